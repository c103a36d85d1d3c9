"""File -> LoadedDocument: one module per format, chosen by extension and checked by content."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.loaders.docx import load_docx
from ingest.loaders.html import load_html
from ingest.loaders.markdown import load_markdown
from ingest.loaders.pdf import load_pdf
from ingest.loaders.text import load_text
from rag.errors import LoadError
from rag.types import LoadedDocument

FILE_TYPES: dict[str, str] = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".docx": "docx",
}

_LOADERS: dict[str, Callable[[Path, bytes], LoadedDocument]] = {
    "markdown": load_markdown,
    "text": load_text,
    "html": load_html,
    "docx": load_docx,
}


def file_type_of(path: Path) -> str | None:
    return FILE_TYPES.get(path.suffix.lower())


def load_document(path: Path, data: bytes, *, pdf_password: str | None = None) -> LoadedDocument:
    """Parse one file's bytes. Raises LoadError with a one-line reason for anything unusable."""
    file_type = file_type_of(path)
    if file_type is None:
        raise LoadError(path, f"unsupported file type {path.suffix or '(no extension)'!r}")
    if not data:
        raise LoadError(path, "empty file")
    document = load_pdf(path, data, password=pdf_password) if file_type == "pdf" else _LOADERS[file_type](path, data)
    if not any(section.text.strip() for section in document.sections):
        raise LoadError(path, "no text in the file")
    return document


__all__ = ["FILE_TYPES", "file_type_of", "load_document"]
