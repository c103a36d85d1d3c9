"""Files built to hurt a parser: truncated and bit-flipped copies of real PDFs, a page tree that
loops, a decompression bomb, a 2,000-page PDF and a 2,000-page scan, a scanned page 200 inches
square, a 50 MB text file, binary junk named .md, invalid UTF-8, a DOCX that is a zip bomb. Each is
(name, bytes); seeded, so a failure repeats."""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from pathlib import Path

from PIL import Image, ImageDraw
from pypdf import PdfWriter
from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject, StreamObject

from .scans import blank_scan, image_only_pdf


def text_pdf(pages: list[str]) -> bytes:
    """A valid PDF, one line of Helvetica text per page, written by pypdf."""
    writer = PdfWriter()
    font = writer._add_object(  # pypdf has no public way to add a bare object
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    for text in pages:
        page = writer.add_blank_page(612, 792)
        stream = DecodedStreamObject()
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream.set_data(f"BT /F1 11 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
    return _written(writer)


def looping_page_tree() -> bytes:
    """The page tree's root lists itself among its kids: a naive walk never ends."""
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    pages = writer.root_object["/Pages"].get_object()
    assert isinstance(pages, DictionaryObject) and isinstance(pages["/Kids"], ArrayObject)
    pages["/Kids"].append(writer.root_object.raw_get("/Pages"))
    pages[NameObject("/Count")] = NumberObject(2)
    return _written(writer)


def decompression_bomb(expanded_mb: int = 1024) -> bytes:
    """One page whose content stream inflates from ~1 MB to `expanded_mb` MB."""
    squeezer = zlib.compressobj(9)
    block = b" " * 2**20
    stream = StreamObject()
    stream._data = b"".join(squeezer.compress(block) for _ in range(expanded_mb)) + squeezer.flush()  # as is
    stream[NameObject("/Filter")] = NameObject("/FlateDecode")
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    page[NameObject("/Contents")] = writer._add_object(stream)
    return _written(writer)


def _written(writer: PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_zip_bomb(expanded_mb: int = 1024) -> bytes:
    """A zip with word/document.xml that inflates to `expanded_mb` MB of XML whitespace."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0"?><w:document>')
            block = b" " * 2**20
            for _ in range(expanded_mb):
                member.write(block)
            member.write(b"</w:document>")
    return out.getvalue()


def giant_page_scan() -> bytes:
    """One scanned page 200 inches square: drawn at the usual scale it would take 1 GB of pixels."""
    page = Image.new("L", (400, 400), color=255)
    ImageDraw.Draw(page).text((20, 190), "Restart the backup server after patching.", fill=0)
    return image_only_pdf([page], dpi=2)


def truncated(data: bytes, fraction: float) -> bytes:
    return data[: int(len(data) * fraction)]


def flipped(data: bytes, flips: int, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    for _ in range(flips):
        damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
    return bytes(damaged)


_WORDS = ["backup", "restore", "server", "patch", "window", "ticket", "router", "disk", "quota", "audit", "log"]


def _sentence(rng: random.Random) -> str:
    """Different on every page, so no line looks like a running header."""
    return " ".join(rng.choice(_WORDS) for _ in range(12)).capitalize() + "."


def hostile_files(real_pdfs: list[Path], *, seed: int = 8) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    files: list[tuple[str, bytes]] = []
    for pdf in real_pdfs:
        data = pdf.read_bytes()
        for fraction in (0.1, 0.5, 0.9):
            files.append((f"{pdf.stem}-truncated-{int(fraction * 100)}.pdf", truncated(data, fraction)))
        for flips in (10, 1000):
            files.append((f"{pdf.stem}-flipped-{flips}.pdf", flipped(data, flips, rng)))
    files += [
        ("looping-page-tree.pdf", looping_page_tree()),
        ("decompression-bomb.pdf", decompression_bomb()),
        ("two-thousand-pages.pdf", text_pdf([_sentence(rng) for _ in range(2000)])),
        ("two-thousand-page-scan.pdf", blank_scan(2000)),
        ("giant-page-scan.pdf", giant_page_scan()),
        ("fifty-megabytes.txt", ("The backup job runs nightly. " * 1_800_000).encode()),
        ("binary-junk.md", rng.randbytes(200_000)),
        ("invalid-utf8.txt", b"Valid start. " + bytes([0xFF, 0xFE, 0xC3, 0x28, 0xA0, 0xA1]) * 2000 + b" valid end."),
        ("zip-bomb.docx", docx_zip_bomb()),
    ]
    return files
