"""Scanned PDFs made from text PDFs we have: each page drawn to an image (as a scanner would) and
the images assembled into a PDF with no text layer, so OCR can be checked against the original's text."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pypdfium2 as pdfium
from PIL import Image
from pypdf import PdfReader, PdfWriter

SCANNER_DPI = 200


def page_images(source: Path, pages: Sequence[int], *, dpi: int = SCANNER_DPI) -> list[Image.Image]:
    """Pages (0-based) of `source` as greyscale images, the way an office scanner delivers them."""
    document = pdfium.PdfDocument(source)
    try:
        return [document[index].render(scale=dpi / 72, grayscale=True).to_pil() for index in pages]
    finally:
        document.close()


def image_only_pdf(images: Sequence[Image.Image], *, dpi: int = SCANNER_DPI) -> bytes:
    """One image per page, JPEG-compressed as scanners do, and no text layer at all."""
    out = io.BytesIO()
    first, *rest = [image.convert("L") for image in images]
    first.save(out, "PDF", save_all=True, append_images=rest, resolution=float(dpi), quality=85)
    return out.getvalue()


def scanned_copy(source: Path, pages: Sequence[int] | None = None, *, dpi: int = SCANNER_DPI) -> bytes:
    """An image-only PDF of `source`'s pages (all of them by default)."""
    indexes = list(range(len(PdfReader(source).pages))) if pages is None else list(pages)
    return image_only_pdf(page_images(source, indexes, dpi=dpi), dpi=dpi)


def partly_scanned(source: Path, scanned: set[int], *, dpi: int = SCANNER_DPI) -> bytes:
    """`source` with the pages in `scanned` (0-based) replaced by their images: a mixed document."""
    original = PdfReader(source)
    order = sorted(scanned)
    images = PdfReader(io.BytesIO(image_only_pdf(page_images(source, order, dpi=dpi), dpi=dpi)))
    writer = PdfWriter()
    for index, page in enumerate(original.pages):
        writer.add_page(images.pages[order.index(index)] if index in scanned else page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def blank_scan(pages: int) -> bytes:
    """A long scan of small blank images: every page needs OCR, none costs much to draw."""
    page = Image.new("L", (160, 220), color=255)
    return image_only_pdf([page] * pages, dpi=20)
