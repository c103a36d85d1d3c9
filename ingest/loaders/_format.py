"""What one file format is to the rest of the product: its suffixes, how its content is
recognised, whether it must be parsed behind the worker's fence, and its loader."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.types import LoadedDocument


@dataclass(frozen=True)
class LoadOptions:
    """What a user may tell a loader about a file, and where it reports a long parse's progress."""

    pdf_password: str | None = None
    ocr: bool = True  # read pages without a text layer by OCR, where the `ocr` extra is installed
    ocr_max_pages: int = 500  # a file with more pages to OCR fails at once, before any is read
    on_page: Callable[[int, int], None] | None = None  # (pages read, pages to read) during OCR


@dataclass(frozen=True)
class Signature:
    """Bytes every file of a binary format holds near its start."""

    magic: bytes
    within: int  # the magic starts within this many bytes (0: at the very start)
    called: str  # what such a file is, for messages: "a PDF"


Loader = Callable[[Path, bytes, LoadOptions], LoadedDocument]


@dataclass(frozen=True)
class FileFormat:
    file_type: str  # what a document records as its type: "pdf", "markdown", ...
    label: str  # for people: "PDF", "Markdown"
    suffixes: tuple[str, ...]  # lower case, with the dot
    load: Loader  # bytes -> sections; raises LoadError with a one-line reason
    # None: a text format, recognised by holding no NUL byte.
    signature: Signature | None = None
    # A small file can expand without bound (zip, Flate streams): always parsed in a fenced worker.
    compressed: bool = False

    def content_problem(self, suffix: str, head: bytes) -> str | None:
        """Why a file named `...suffix` whose first bytes are `head` is not of this format, or None."""
        if self.signature is None:
            return f"named {suffix} but holds binary data" if b"\x00" in head else None
        sign = self.signature
        found = head.startswith(sign.magic) if sign.within == 0 else sign.magic in head[: sign.within]
        return None if found else f"named {suffix} but is not {sign.called}"
