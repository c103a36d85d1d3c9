"""File -> LoadedDocument: one module per format, each declaring its `FORMAT`, and the one table
of formats that the CLI, the upload route and the parse worker all read. Adding a format is its
module plus one entry in FORMATS (docs/ARCHITECTURE.md)."""

from __future__ import annotations

from pathlib import Path

from ingest.loaders import docx, html, markdown, pdf, text
from ingest.loaders._format import FileFormat, LoadOptions
from rag.errors import LoadError
from rag.types import LoadedDocument

FORMATS: tuple[FileFormat, ...] = (pdf.FORMAT, docx.FORMAT, markdown.FORMAT, html.FORMAT, text.FORMAT)

_BY_SUFFIX = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}
SUFFIXES: tuple[str, ...] = tuple(sorted(_BY_SUFFIX))


def format_of(path: Path | str) -> FileFormat | None:
    """The format a file's name says it is, or None for a type we do not read."""
    return _BY_SUFFIX.get(Path(path).suffix.lower())


_DEFAULTS = LoadOptions()


def load_document(path: Path, data: bytes, options: LoadOptions = _DEFAULTS) -> LoadedDocument:
    """Parse one file's bytes. Raises LoadError with a one-line reason for anything unusable."""
    fmt = format_of(path)
    if fmt is None:
        raise LoadError(path, f"unsupported file type {path.suffix or '(no extension)'!r}")
    if not data:
        raise LoadError(path, "empty file")
    document = fmt.load(path, data, options)
    if not any(section.text.strip() for section in document.sections):
        raise LoadError(path, "no text in the file")
    return document


__all__ = ["FORMATS", "SUFFIXES", "FileFormat", "LoadOptions", "format_of", "load_document"]
