"""Ruled tables in text PDFs, found by pdfplumber and given back as Markdown in their place.

pypdf reads a table as loose lines, a cell per line, so "Supports remote hosts? Yes No No" loses
which value belongs to which column. pdfplumber finds tables from their ruling lines; parsing a page
with it costs ten times pypdf's, so only pages that PDFium says draw many paths (a ruled table draws
dozens) are looked at. On such a page the text outside the tables is pdfplumber's too, so that the
tables land between the right lines.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Sequence
from typing import Any

from rag.tables import markdown_table

logging.getLogger("pdfminer").setLevel(logging.ERROR)

_MIN_PATHS = 40  # path objects on a page before it is searched for tables (a ruled table draws more)


def pages_with_tables(data: bytes, pages: Sequence[int], *, password: str | None) -> dict[int, list[str]]:
    """For each page of `pages` (0-based) holding a table: its lines, each table as Markdown lines
    between blank ones. Pages without one are left out; a page that fails is left to pypdf."""
    candidates = _drawn_pages(data, pages, password=password)
    if not candidates:
        return {}
    import pdfplumber

    found: dict[int, list[str]] = {}
    with pdfplumber.open(io.BytesIO(data), password=password or "", pages=[i + 1 for i in candidates]) as pdf:
        for index, page in zip(candidates, pdf.pages, strict=True):
            try:
                lines = _page_lines(page)
            except Exception:
                continue  # damaged drawing: the page keeps pypdf's text
            finally:
                page.close()
            if lines is not None:
                found[index] = lines
    return found


def _drawn_pages(data: bytes, pages: Sequence[int], *, password: str | None) -> list[int]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_raw

    try:
        document = pdfium.PdfDocument(data, password=password)
    except Exception:
        return []
    try:
        drawn = []
        for index in pages:
            page = document[index]
            try:
                paths = page.get_objects(filter=[pdfium_raw.FPDF_PAGEOBJ_PATH], max_depth=2)
                if next(itertools.islice(paths, _MIN_PATHS - 1, None), None) is not None:
                    drawn.append(index)
            finally:
                page.close()
        return drawn
    finally:
        document.close()


def _page_lines(page: Any) -> list[str] | None:
    tables = []
    for table in page.find_tables():
        text = markdown_table(table.extract())
        if text is not None:
            tables.append((table.bbox, text))
    if not tables:
        return None

    def outside(obj: dict[str, Any]) -> bool:
        if obj.get("object_type") != "char":
            return True
        middle_x, middle_y = (obj["x0"] + obj["x1"]) / 2, (obj["top"] + obj["bottom"]) / 2
        return not any(x0 <= middle_x <= x1 and top <= middle_y <= bottom for (x0, top, x1, bottom), _ in tables)

    placed: list[tuple[float, list[str]]] = [
        (line["top"], [line["text"]]) for line in page.filter(outside).extract_text_lines(return_chars=False)
    ]
    placed += [(bbox[1], ["", *text.split("\n"), ""]) for bbox, text in tables]
    return [line for _, lines in sorted(placed, key=lambda item: item[0]) for line in lines]
