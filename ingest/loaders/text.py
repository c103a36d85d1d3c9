"""Plain text: one section, the file as it is."""

from __future__ import annotations

from pathlib import Path

from ingest.loaders._format import FileFormat, LoadOptions
from ingest.loaders._text import decode_text
from rag.types import LoadedDocument, Section


def load_text(path: Path, data: bytes, options: LoadOptions) -> LoadedDocument:
    text = decode_text(path, data).replace("\r\n", "\n").strip()
    return LoadedDocument(path=str(path), file_type="text", sections=(Section(text=text),) if text else ())


FORMAT = FileFormat("text", "plain text", (".txt", ".text"), load_text)
