"""See the source: a document's original file, its PDF pages rendered as PNG, and where a chunk's
text lies on a page (rectangles from PDFium's own character boxes).

The original is the file the manifest names; a request only ever names a document id, which is
looked up there, so nothing a client sends reaches the file system as a path. PDFium is not
thread-safe: every call into it holds one lock.

A chunk is found on its page by its text, not by offsets: the text was extracted by pypdf at
ingest and PDFium's differs in spacing, hyphenation and ligatures, so both are reduced to their
characters without white space (NFKC, lower case) and aligned (difflib); runs of 6 or more
matching characters become rectangles. This works for documents ingested before highlights
existed too. A scanned page has no characters: it is read by OCR as at ingest, and the boxes
holding matched text (a line or part of one each) become the rectangles.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any

from rag.errors import NotRenderable, PageNotFound, SourceGone
from rag.types import DocumentRecord

_PDFIUM = threading.Lock()
_OCR = threading.Lock()  # one page recognised at a time per process: bounded memory, and one engine shared
_MIN_RUN = 6  # shorter matches are as likely chance as the passage
_WIDTH_STEP = 100  # widths are rounded to this, so the render cache stays small


@dataclass(frozen=True)
class Highlight:
    page: int
    width: float  # the page's size in PDF points; rectangles are in the same units,
    height: float  # origin at the top left, as on the rendered image
    rects: list[tuple[float, float, float, float]] = field(default_factory=list)  # x0, y0, x1, y1
    matched: float = 0.0  # the share of the chunk's characters found on this page

    def to_dict(self) -> dict[str, Any]:
        return {
            "page": self.page,
            "page_width": round(self.width, 2),
            "page_height": round(self.height, 2),
            "rects": [[round(v, 2) for v in rect] for rect in self.rects],
            "matched": round(self.matched, 3),
        }


def original(record: DocumentRecord) -> Path:
    """The file the document was ingested from, if it is still the same file."""
    path = Path(record.source)
    if not path.is_file():
        raise SourceGone(f"{path.name} is no longer where it was ingested from; ingest it again to open it")
    stat = path.stat()
    if stat.st_size != record.size or _sha256(str(path), stat.st_mtime_ns, stat.st_size) != record.sha256:
        raise SourceGone(f"{path.name} has changed since it was ingested; ingest it again to open this version")
    return path


@lru_cache(maxsize=256)
def _sha256(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pdf(path: Path) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        raise NotRenderable(f"{path.name} cannot be drawn: {exc}") from None


def _page(pdf: Any, number: int, name: str) -> Any:
    if not 1 <= number <= len(pdf):
        raise PageNotFound(f"{name} has {len(pdf)} pages; there is no page {number}")
    return pdf[number - 1]


class PageRenderer:
    """PDF pages as PNG at a requested width (capped), cached on disk by file content and width."""

    def __init__(self, cache_dir: Path, max_width: int) -> None:
        self.cache_dir = cache_dir
        self.max_width = max_width

    def width(self, requested: int) -> int:
        stepped = max(_WIDTH_STEP, round(requested / _WIDTH_STEP) * _WIDTH_STEP)
        return min(stepped, self.max_width)

    def render(self, path: Path, record: DocumentRecord, number: int, requested_width: int) -> bytes:
        width = self.width(requested_width)
        cached = self.cache_dir / record.sha256[:32] / f"{number}-{width}.png"
        if cached.is_file():
            return cached.read_bytes()
        with _PDFIUM:
            pdf = _pdf(path)
            try:
                page = _page(pdf, number, path.name)
                image = page.render(scale=width / page.get_width()).to_pil()
            finally:
                pdf.close()
        png = _png(image)
        _write_whole(cached, png)
        return png


def _png(image: Any) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def highlight(path: Path, number: int, text: str, *, ocr_cache: Path | None = None) -> Highlight:
    """Where `text` (a chunk's) lies on page `number` of the PDF at `path`. A page with no text layer
    (a scan, read by OCR at ingest) is read by OCR again, its boxes kept in `ocr_cache` (a folder
    for this file's version; None: no OCR), so only the first look at a scanned page takes seconds."""
    wanted = _normalised(text)
    cached = None if ocr_cache is None else ocr_cache / f"{number}.json"
    image = None
    with _PDFIUM:
        pdf = _pdf(path)
        try:
            page = _page(pdf, number, path.name)
            width, height = page.get_size()
            textpage = page.get_textpage()
            found, indices = _page_characters(textpage)
            runs = _matched_runs(found, indices, wanted)
            rects: list[tuple[float, float, float, float]] = []
            for start, end in runs:
                for i in range(textpage.count_rects(start, end - start + 1)):
                    left, bottom, right, top = textpage.get_rect(i)
                    rects.append((left, height - top, right, height - bottom))
            if not found and cached is not None and not cached.is_file():
                image = _drawn_for_ocr(page)
        finally:
            pdf.close()
    if not found and cached is not None:
        boxes = _ocr_boxes(cached, image)
        if boxes is not None:
            found, indices = _characters((i, box[4]) for i, box in enumerate(boxes))
            runs = _matched_runs(found, indices, wanted)
            rects = [
                (x0, y0, x1, y1) for i, (x0, y0, x1, y1, _) in enumerate(boxes) if any(a <= i <= b for a, b in runs)
            ]
    matched = sum(1 for _ in _covered(found, indices, runs)) / len(wanted) if wanted else 0.0
    return Highlight(number, width, height, rects, min(matched, 1.0))


OcrBox = tuple[float, float, float, float, str]  # x0, y0, x1, y1 in points from the top left, and the text


def _drawn_for_ocr(page: Any) -> tuple[Any, float] | None:
    from ingest.loaders import ocr

    return ocr.draw(page) if ocr.available() else None


def _ocr_boxes(cached: Path, image: tuple[Any, float] | None) -> list[OcrBox] | None:
    """The page's OCR boxes: from `cached`, or recognised on `image` (drawn, with its scale) and
    kept there. None when there is neither (the `ocr` extra is not installed)."""
    if cached.is_file():
        return _read_boxes(cached)
    if image is None:
        return None
    from ingest.loaders import ocr

    with _OCR:
        if cached.is_file():  # another request read this page while this one waited
            return _read_boxes(cached)
        pixels, scale = image
        boxes: list[OcrBox] = [(b.x0, b.y0, b.x1, b.y1, b.text) for b in ocr.in_points(ocr.recognise(pixels), scale)]
        _write_whole(cached, json.dumps(boxes, ensure_ascii=False).encode())
        return boxes


def _read_boxes(cached: Path) -> list[OcrBox]:
    return [
        (float(x0), float(y0), float(x1), float(y1), str(t)) for x0, y0, x1, y1, t in json.loads(cached.read_text())
    ]


def _write_whole(path: Path, data: bytes) -> None:
    """Whole or not at all: two requests for one page may race."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(data)
    os.replace(handle.name, path)


def _normalised(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", text).lower() if not c.isspace())


def _page_characters(textpage: Any) -> tuple[str, list[int]]:
    """The page's characters as `_characters` gives them, indexed by PDFium character."""
    import pypdfium2.raw as raw

    codes = ((index, raw.FPDFText_GetUnicode(textpage.raw, index)) for index in range(textpage.count_chars()))
    return _characters(
        (index, chr(code)) for index, code in codes if 0 < code < 0x110000 and code not in (0xFFFE, 0xFFFF)
    )


def _characters(pieces: Iterable[tuple[int, str]]) -> tuple[str, list[int]]:
    """Text without white space, normalised as a chunk's is, each character with the index of the
    piece it came from (a ligature gives several characters of one index)."""
    chars: list[str] = []
    indices: list[int] = []
    for index, piece in pieces:
        for char in _normalised(piece):
            chars.append(char)
            indices.append(index)
    return "".join(chars), indices


def locate(text: str, passage: str) -> tuple[int, int] | None:
    """The span [start, end) of `text` (a document's section) that holds `passage`, or None."""
    found, indices = _characters(enumerate(text))
    runs = _matched_runs(found, indices, _normalised(passage))
    if not runs:
        return None
    return runs[0][0], runs[-1][1] + 1


def _matched_runs(found: str, indices: list[int], wanted: str) -> list[tuple[int, int]]:
    """Ranges (first, last) of `indices` (PDFium characters, or a section's) whose text matches the chunk's."""
    blocks = SequenceMatcher(None, found, wanted, autojunk=False).get_matching_blocks()
    runs: list[tuple[int, int]] = []
    for block in blocks:
        if block.size < _MIN_RUN:
            continue
        first, last = indices[block.a], indices[block.a + block.size - 1]
        if runs and first <= runs[-1][1] + 2:  # adjacent blocks (a skipped hyphen or space): one run
            runs[-1] = (runs[-1][0], max(last, runs[-1][1]))
        else:
            runs.append((first, last))
    return runs


def _covered(found: str, indices: list[int], runs: list[tuple[int, int]]) -> Any:
    for position, index in enumerate(indices):
        if any(start <= index <= end for start, end in runs):
            yield found[position]
