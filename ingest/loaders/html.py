"""HTML: visible text in reading order, h1-h6 as the heading path; scripts, styles and nav dropped."""

from __future__ import annotations

from pathlib import Path

from ingest.loaders._format import FileFormat, LoadOptions
from ingest.loaders._sections import Block, sections_from_blocks
from ingest.loaders._text import decode_text
from rag.types import LoadedDocument

_DROP = ("script", "style", "noscript", "template", "nav", "svg", "head")
_BLOCK_TAGS = ("p", "div", "li", "tr", "pre", "blockquote", "section", "article", "br", "table", "dd", "dt")
_MARK = "\x00"  # never occurs in decoded HTML text


def load_html(path: Path, data: bytes, options: LoadOptions) -> LoadedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(path, data), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_DROP):
        tag.decompose()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n{_MARK}{level}{_MARK}{heading.get_text(' ', strip=True)}\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_after("\n")
    text = soup.get_text()
    blocks: list[Block] = []
    for raw_line in text.split("\n"):
        line = " ".join(raw_line.split())
        if not line:
            continue
        if line.startswith(_MARK):
            _, depth, heading_text = line.split(_MARK, 2)
            blocks.append(Block(heading_text, level=int(depth)))
        else:
            blocks.append(Block(line))
    return LoadedDocument(path=str(path), file_type="html", sections=sections_from_blocks(blocks), title=title)


FORMAT = FileFormat("html", "HTML", (".html", ".htm"), load_html)
