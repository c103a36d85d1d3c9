"""Text from page images: PDF pages drawn by PDFium and read by RapidOCR (PP-OCR models on ONNX
Runtime, Chinese and English, shipped inside the `rapidocr-onnxruntime` wheel: nothing downloads).

The `ocr` extra brings RapidOCR; without it `available()` is False and scans fail with a message
naming the extra. OCR gives boxes, not lines: `reading_order` puts them back into lines, and a page
set in two columns is read column by column (a box spanning the gutter, a title or a full-width
caption, ends the columns above it).

The Chinese-English recogniser reads Latin letters faithfully but drops many spaces between words
("Therearetwobasicapproaches"): `ocr_spacing` puts them back. The line-orientation classifier is
off: on upright scans it turned whole lines into garbage.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from ingest.loaders.ocr_spacing import respace

EXTRA_HINT = "install the 'ocr' extra: pip install 'rag-kb[ocr]'"
# Pages are drawn at 200 dpi, an office scanner's resolution (drawn smaller, English is read less
# accurately: docs/benchmarks.md), and never wider or taller than this, so that a hostile page size
# costs no more memory than a large real one.
_SCALE = 200 / 72
_MAX_SIDE_PX = 2500
_MIN_SCORE = 0.5  # RapidOCR's own text_score: lower is mostly figure debris
_HAN = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
PageProgress = Callable[[int, int], None]  # (pages done, pages to do)


@dataclass(frozen=True)
class Box:
    """One recognised text box, in pixels of the drawn page."""

    x0: float
    y0: float
    x1: float
    y1: float
    text: str

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def middle_y(self) -> float:
        return (self.y0 + self.y1) / 2


def available() -> bool:
    """Whether the `ocr` extra is installed (and importable: OpenCV needs libGL.so.1)."""
    try:
        import rapidocr_onnxruntime  # noqa: F401
        import wordninja  # noqa: F401
    except ImportError:
        return False
    return True


@cache
def _engine() -> Any:
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def read_pages(
    data: bytes, indexes: Sequence[int], *, password: str | None, progress: PageProgress | None
) -> dict[int, list[str]]:
    """The lines of each page in `indexes` (0-based), one page drawn and read at a time."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(data, password=password)
    found: dict[int, list[str]] = {}
    try:
        for done, index in enumerate(indexes):
            page = document[index]
            try:
                image, _ = draw(page)
            finally:
                page.close()
            found[index] = reading_order(recognise(image))
            if progress is not None:
                progress(done + 1, len(indexes))
    finally:
        document.close()
    return found


def draw(page: Any) -> tuple[Any, float]:
    """A PDFium page as OCR reads it: an H x W x 3 array, and pixels per PDF point."""
    width, height = page.get_size()
    scale = min(_SCALE, _MAX_SIDE_PX / max(width, height, 1.0))
    bitmap = page.render(scale=scale)
    try:
        return bitmap.to_numpy().copy(), scale
    finally:
        bitmap.close()


def in_points(boxes: Sequence[Box], scale: float) -> list[Box]:
    """Boxes of a page drawn at `scale`, in PDF points from the page's top left."""
    return [Box(b.x0 / scale, b.y0 / scale, b.x1 / scale, b.y1 / scale, b.text) for b in boxes]


def recognise(image: Any) -> list[Box]:
    """RapidOCR's boxes on one image (an H x W x 3 array), as axis-aligned boxes."""
    result, _ = _engine()(image, use_cls=False)
    boxes = []
    for corners, text, score in result or []:
        if float(score) < _MIN_SCORE or not str(text).strip():
            continue
        xs = [float(x) for x, _ in corners]
        ys = [float(y) for _, y in corners]
        boxes.append(Box(min(xs), min(ys), max(xs), max(ys), respace(str(text).strip())))
    return boxes


def reading_order(boxes: Sequence[Box]) -> list[str]:
    """Lines in the order a person reads them: top to bottom, a two-column stretch column by column;
    text running up a margin (a tall, narrow box) is a line of its own, never part of the lines
    beside it: before the page's lines in the left margin, after them in the right one."""
    if not boxes:
        return []
    line_height = statistics.median(b.height for b in boxes)
    sideways = sorted(
        (b for b in boxes if b.height > 2 * (b.x1 - b.x0) and b.height > 3 * line_height), key=lambda b: b.x0
    )
    upright = [b for b in boxes if b not in sideways]
    middle = (min(b.x0 for b in boxes) + max(b.x1 for b in boxes)) / 2
    left = [b.text for b in sideways if b.x1 < middle]
    right = [b.text for b in sideways if b.x1 >= middle]
    return left + _upright_lines(upright) + right


def _upright_lines(boxes: Sequence[Box]) -> list[str]:
    if not boxes:
        return []
    gutter = _gutter(boxes)
    if gutter is None:
        return _lines(boxes)
    reach = 0.05 * (max(b.x1 for b in boxes) - min(b.x0 for b in boxes))
    lines: list[str] = []
    left: list[Box] = []
    right: list[Box] = []

    def flush() -> None:
        lines.extend(_lines(left) + _lines(right))
        left.clear()
        right.clear()

    for box in sorted(boxes, key=lambda b: (b.y0, b.x0)):
        if box.x0 < gutter - reach and box.x1 > gutter + reach:  # spans both columns: read after what is above
            flush()
            lines.extend(_lines([box]))
        elif (box.x0 + box.x1) / 2 < gutter:
            left.append(box)
        else:
            right.append(box)
    flush()
    return lines


def _gutter(boxes: Sequence[Box]) -> float | None:
    """The x of the strip between two columns of text (the one crossed by fewest boxes in the
    middle of the page), or None for one column."""
    page_left = int(min(b.x0 for b in boxes))
    width = int(max(b.x1 for b in boxes)) - page_left
    if width <= 0:
        return None
    # Boxes wider than half the text area span the columns (titles, captions): they do not decide.
    narrow = [b for b in boxes if b.x1 - b.x0 < width / 2]
    if len(narrow) < 6:
        return None
    crossing = np.zeros(width + 2, dtype=np.int32)
    for box in narrow:
        crossing[int(box.x0) - page_left] += 1
        crossing[int(box.x1) - page_left + 1] -= 1
    crossing = np.cumsum(crossing)
    low, high = int(0.3 * width), int(0.7 * width)
    x = low + int(np.argmin(crossing[low:high]))
    gutter = float(page_left + x)
    on_left = sum(1 for b in narrow if b.x1 <= gutter)
    on_right = sum(1 for b in narrow if b.x0 >= gutter)
    # A gutter is crossed by few lines, and both sides hold a real column, not labels beside a figure.
    if crossing[x] > 0.05 * len(narrow) or min(on_left, on_right) < max(3, len(narrow) // 5):
        return None
    return gutter


def _lines(boxes: Sequence[Box]) -> list[str]:
    """Boxes on one baseline become one line, left to right."""
    if not boxes:
        return []
    tolerance = 0.5 * statistics.median(b.height for b in boxes)
    rows: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: b.middle_y):
        if rows and abs(box.middle_y - statistics.fmean(b.middle_y for b in rows[-1])) <= tolerance:
            rows[-1].append(box)
        else:
            rows.append([box])
    return [_join(sorted(row, key=lambda b: b.x0)) for row in rows]


def _join(row: Sequence[Box]) -> str:
    text = row[0].text
    for box in row[1:]:
        both_han = _HAN.search(text[-1:]) and _HAN.match(box.text)
        text += ("" if both_han else " ") + box.text
    return text
