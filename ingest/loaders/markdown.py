"""Markdown: ATX (#) and setext (===/---) headings outside fenced code become the heading path."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.loaders._format import FileFormat, LoadOptions
from ingest.loaders._sections import Block, sections_from_blocks
from ingest.loaders._text import decode_text
from rag.types import LoadedDocument

_ATX = re.compile(r"^ {0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def load_markdown(path: Path, data: bytes, options: LoadOptions) -> LoadedDocument:
    lines = decode_text(path, data).replace("\r\n", "\n").split("\n")
    blocks: list[Block] = []
    paragraph: list[str] = []
    in_fence = False

    def flush() -> None:
        if paragraph:
            blocks.append(Block("\n".join(paragraph)))
            paragraph.clear()

    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            paragraph.append(line)
            continue
        if in_fence:
            paragraph.append(line)
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            blocks.append(Block(atx.group(2), level=len(atx.group(1))))
        elif _SETEXT.match(line) and len(paragraph) == 1 and paragraph[0].strip():
            title = paragraph.pop()
            blocks.append(Block(title, level=1 if line.strip().startswith("=") else 2))
        elif not line.strip():
            flush()
        else:
            paragraph.append(line)
    flush()
    sections = sections_from_blocks(blocks)
    title = next((b.text for b in blocks if b.level == 1), "")
    return LoadedDocument(path=str(path), file_type="markdown", sections=sections, title=title)


FORMAT = FileFormat("markdown", "Markdown", (".md", ".markdown"), load_markdown)
