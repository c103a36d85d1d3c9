"""The write side: files in, chunks and vectors in the store."""

from ingest.pipeline import FileOutcome, Ingestor, IngestReport, discover

__all__ = ["FileOutcome", "IngestReport", "Ingestor", "discover"]
