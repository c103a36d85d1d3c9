"""What a run must do with each source, decided from the manifest: skip, add, replace, prune.

The write protocol that keeps a killed run invisible and repairable lives in ingest.pipeline;
this module only holds the identity rules (document id, version) and the recovery of records
a killed run left pending.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from rag.lexical.index import LexicalIndex
from rag.store import KnowledgeBase
from rag.types import DocumentRecord


def document_id(path: Path) -> str:
    """Stable per source path: re-ingesting the same file replaces, never duplicates."""
    return hashlib.sha256(str(path.resolve()).encode("utf-8")).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_version(sha256: str, *, chunking_key: str) -> str:
    """The chunk-set version: the file's bytes and everything that shapes its chunks and vectors."""
    return hashlib.sha256(f"{sha256}|{chunking_key}".encode()).hexdigest()[:16]


def recover(
    kb: KnowledgeBase, records: Iterable[DocumentRecord] | None = None, lexical: LexicalIndex | None = None
) -> list[str]:
    """Finish what killed runs left: drop uncommitted chunks (and their BM25 term files, given the
    index), forget never-committed documents.

    Returns the ids of the documents repaired. Safe to run any number of times.
    """
    repaired = []
    for record in records if records is not None else kb.documents(pending_only=True):
        if not record.pending_version:
            continue
        if lexical is not None and record.pending_version != record.version:
            lexical.drop_terms(record.doc_id, record.pending_version)
        if record.version:
            kb.delete_chunks(record.doc_id, keep_version=record.version)
            kb.put_document(replace(record, pending_version=""))
        else:
            kb.delete_chunks(record.doc_id)
            kb.remove_document_record(record.doc_id)
        repaired.append(record.doc_id)
    return repaired


def delete_document(kb: KnowledgeBase, record: DocumentRecord, lexical: LexicalIndex | None = None) -> None:
    """Hide the document at once (one record write), then remove its chunks, the record and (given
    the BM25 index) its term files."""
    kb.put_document(replace(record, version="", pending_version=record.version or record.pending_version or "-"))
    kb.delete_chunks(record.doc_id)
    kb.remove_document_record(record.doc_id)
    if lexical is not None:
        lexical.drop_terms(record.doc_id, record.version, record.pending_version)
