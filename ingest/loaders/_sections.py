"""Turning a flat run of headings and paragraphs into Sections with heading paths."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rag.types import Section


@dataclass(frozen=True)
class Block:
    """A heading (level >= 1) or a body paragraph (level 0) in reading order."""

    text: str
    level: int = 0


def sections_from_blocks(blocks: Iterable[Block]) -> tuple[Section, ...]:
    """Group body blocks under the heading path in force; each heading starts a section.

    The heading's own line stays at the top of its section's text, so the text reads as in
    the source and character spans cover it.
    """
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []

    def flush() -> None:
        text = "\n\n".join(part for part in body if part.strip()).strip()
        if text:
            sections.append(Section(text=text, heading_path=tuple(title for _, title in path)))
        body.clear()

    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.level <= 0:
            body.append(text)
            continue
        flush()
        while path and path[-1][0] >= block.level:
            path.pop()
        path.append((block.level, " ".join(text.split())))
        body.append(text)
    flush()
    return tuple(sections)
