"""DOCX: paragraphs and tables (as Markdown) in document order; Title/Heading N styles give the
heading path."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from ingest.loaders._format import FileFormat, LoadOptions, Signature
from ingest.loaders._sections import Block, sections_from_blocks
from rag.errors import LoadError
from rag.tables import markdown_table
from rag.types import LoadedDocument

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
# A DOCX is a zip; its XML parts are small. Past this much uncompressed XML it is a zip bomb.
_MAX_UNCOMPRESSED = 512 * 1024 * 1024


def load_docx(path: Path, data: bytes, options: LoadOptions) -> LoadedDocument:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            total = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise LoadError(path, "not a DOCX (not a zip archive)") from None
    if "word/document.xml" not in names:
        raise LoadError(path, "not a DOCX (zip archive without word/document.xml)")
    if total > _MAX_UNCOMPRESSED:
        raise LoadError(path, f"DOCX expands to {total // 2**20} MB: refused as a zip bomb")

    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise LoadError(path, f"unreadable DOCX: {exc}") from None
    blocks: list[Block] = []
    title = ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            blocks += _table_blocks(item)
            continue
        text = item.text
        style = (item.style.name if item.style is not None else "") or ""
        match = _HEADING_STYLE.match(style.strip())
        if style.strip().lower() == "title":
            title = title or text.strip()
            blocks.append(Block(text, level=1))
        elif match:
            blocks.append(Block(text, level=int(match.group(1)) + 1 if title else int(match.group(1))))
        else:
            blocks.append(Block(text))
    return LoadedDocument(path=str(path), file_type="docx", sections=sections_from_blocks(blocks), title=title)


def _table_blocks(table: Any) -> list[Block]:
    """A table as one Markdown block (its first row the header); one too small to be a table, as
    its rows' text."""
    rows = []
    for row in table.rows:
        cells = row.cells
        # A merged cell is the same cell in each grid column it spans: its text once is enough.
        rows.append([c.text if i == 0 or c._tc is not cells[i - 1]._tc else "" for i, c in enumerate(cells)])
    markdown = markdown_table(rows)
    if markdown is not None:
        return [Block(markdown)]
    return [Block(" ".join(" ".join(cell.split()) for cell in row if cell.strip())) for row in rows]


FORMAT = FileFormat(
    "docx",
    "DOCX",
    (".docx",),
    load_docx,
    signature=Signature(b"PK\x03\x04", 0, "a DOCX (zip) file"),
    compressed=True,
)
