"""LoadedDocument -> Chunks: token-aware (the embedder's own tokenizer), heading- and CJK-aware.

Sections under one heading are split together (so a paragraph running over a page break stays
whole); a new heading starts a new chunk unless the part before it is too small to stand on its
own. Inside, langchain's recursive splitter breaks at paragraphs, lines, then sentence ends,
CJK sentence punctuation included, and overlaps neighbours by `overlap_tokens`.

A Markdown table (every loader gives tables so) is never cut by the splitter: it is one piece,
joined to the text before it (its caption) when both fit; a table too long for one piece is split
between rows, each piece starting with the header row again, so every piece reads as a table.
A table's budget counts what the embedder reads of it (`plain_tables`: no bars, no rules).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.tables import plain_tables, segments
from rag.types import Chunk, LoadedDocument, Section

# Break points, strongest first. Separators stay at the end of the piece they close.
SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    ". ",
    "! ",
    "? ",
    "; ",
    "，",
    "、",
    ", ",
    " ",
    "",
]
SECTION_JOINER = "\n\n"
# Bumped when chunking output changes, so re-ingesting re-chunks unchanged files.
CHUNKER_VERSION = "2"
_MIN_PIECE_TOKENS = 8


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    section: Section


def document_text(document: LoadedDocument) -> tuple[str, list[_Span]]:
    """The document's normalised text (sections joined by a blank line) and each section's span."""
    parts: list[str] = []
    spans: list[_Span] = []
    cursor = 0
    for section in document.sections:
        if parts:
            parts.append(SECTION_JOINER)
            cursor += len(SECTION_JOINER)
        parts.append(section.text)
        spans.append(_Span(cursor, cursor + len(section.text), section))
        cursor += len(section.text)
    return "".join(parts), spans


def heading_context(heading_path: Sequence[str], text: str) -> str:
    """What the embedder reads: the chunk with its heading path in front, unless it starts with it."""
    if not heading_path or text.startswith(heading_path[-1]):
        return text
    return " > ".join(heading_path) + "\n" + text


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], *, max_tokens: int, overlap_tokens: int) -> None:
        if overlap_tokens >= max_tokens:
            raise ValueError("overlap_tokens must be below max_tokens")
        self._count = count_tokens
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.min_tokens = max(1, max_tokens // 4)

    def chunk(self, document: LoadedDocument, *, doc_id: str, version: str, ingested_at: str = "") -> list[Chunk]:
        text, spans = document_text(document)
        chunks: list[Chunk] = []
        for block in self._blocks(spans):
            start, end = block[0].start, block[-1].end
            # Any of the block's headings may end up in front of a piece: budget for the longest.
            heading_tokens = max(self._heading_tokens(span.section.heading_path) for span in block)
            for piece_start, piece_end, piece in self._split(text[start:end], heading_tokens):
                s = start + piece_start
                e = start + piece_end
                touched = [sp for sp in block if sp.start < e and sp.end > s]
                main = max(touched, key=lambda sp: min(e, sp.end) - max(s, sp.start)) if touched else block[0]
                pages = sorted({sp.section.page for sp in touched if sp.section.page is not None})
                index = len(chunks)
                chunks.append(
                    Chunk(
                        id=f"{doc_id}:{version}:{index:05d}",
                        text=piece,
                        doc_id=doc_id,
                        version=version,
                        source=document.path,
                        file_type=document.file_type,
                        chunk_index=index,
                        char_start=s,
                        char_end=e,
                        pages=tuple(pages),
                        heading_path=main.section.heading_path,
                        content_hash=hashlib.sha256(piece.encode("utf-8")).hexdigest()[:16],
                        ingested_at=ingested_at,
                    )
                )
        return chunks

    def _blocks(self, spans: list[_Span]) -> list[list[_Span]]:
        """Runs of sections split together: a heading change ends a run unless the run is tiny."""
        blocks: list[list[_Span]] = []
        tokens = 0
        for span in spans:
            if (
                blocks
                and span.section.heading_path != blocks[-1][-1].section.heading_path
                and tokens >= self.min_tokens
            ):
                blocks.append([])
                tokens = 0
            if not blocks:
                blocks.append([])
            blocks[-1].append(span)
            tokens += self._count(span.section.text)
        return blocks

    def _read(self, text: str) -> int:
        """Tokens of what the embedder reads of `text`: tables without their bars and rules."""
        return self._count(plain_tables(text))

    def _heading_tokens(self, heading_path: Sequence[str]) -> int:
        return self._count(heading_context(heading_path, "")) if heading_path else 0

    def _split(self, text: str, heading_tokens: int) -> list[tuple[int, int, str]]:
        """Pieces of `text` as (start, end, text), each within the token budget left by the heading.
        A piece's text is text[start:end], except for the pieces of a long table (header repeated)."""
        size = max(self.max_tokens - heading_tokens, self.max_tokens // 2)
        out: list[tuple[int, int, str]] = []
        for start, end, table in segments(text):
            if not table:
                out += self._split_prose(text, start, end, size)
                continue
            rows = self._split_table(text, start, end, size)
            before = out[-1] if out else None
            if len(rows) == 1 and before is not None and self._read(text[before[0] : end]) <= size:
                out[-1] = (before[0], end, text[before[0] : end])  # the table with its caption
            else:
                out += rows
        return out

    def _split_prose(self, text: str, start: int, end: int, size: int) -> list[tuple[int, int, str]]:
        part = text[start:end]
        if not part.strip():
            return []
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=size,
            chunk_overlap=min(self.overlap_tokens, size // 2),
            length_function=self._count,
            separators=SEPARATORS,
            keep_separator="end",
            strip_whitespace=True,
        )
        out: list[tuple[int, int, str]] = []
        previous_end = 0
        for piece in splitter.split_text(part):
            at = self._locate(part, piece, after=out[-1][0] - start if out else -1, previous_end=previous_end)
            piece_end = at + len(piece)
            if out and self._count(piece) < _MIN_PIECE_TOKENS:
                # A scrap (a stray list number, a page's last word): fold it into its neighbour.
                merged = part[out[-1][0] - start : piece_end]
                if self._count(merged) <= size:
                    out[-1] = (out[-1][0], start + piece_end, merged)
                    previous_end = piece_end
                    continue
            out.append((start + at, start + piece_end, piece))
            previous_end = piece_end
        return out

    def _split_table(self, text: str, start: int, end: int, size: int) -> list[tuple[int, int, str]]:
        """The table in text[start:end] whole if it fits, else runs of rows under its header."""
        table = text[start:end]
        if self._read(table) <= size:
            return [(start, end, table)]
        lines = table.split("\n")
        header = "\n".join(lines[:2])  # the header row and its rule
        pieces: list[tuple[int, int, str]] = []
        offset = start + len(header) + 1
        rows: list[str] = []
        rows_start = start  # the first piece is the table's own first lines, header and all
        for row in lines[2:]:
            if rows and self._read(header + "\n" + "\n".join([*rows, row])) > size:
                pieces.append((rows_start, offset - 1, header + "\n" + "\n".join(rows)))
                rows, rows_start = [], offset
            if self._read(header + "\n" + row) > size:  # one row past the budget: cut it as text
                pieces += self._split_prose(text, offset, offset + len(row), size)
                rows_start = offset + len(row) + 1
            else:
                rows.append(row)
            offset += len(row) + 1
        if rows:
            pieces.append((rows_start, end, header + "\n" + "\n".join(rows)))
        return pieces

    @staticmethod
    def _locate(text: str, piece: str, *, after: int, previous_end: int) -> int:
        """Where the splitter took `piece` from: the first place past the previous piece's start
        at which it also reaches past the previous piece's end (pieces overlap, never go back)."""
        found = text.find(piece, after + 1)
        while found >= 0 and found + len(piece) <= previous_end:
            found = text.find(piece, found + 1)
        if found < 0:  # not expected (pieces are substrings); keep order rather than fail
            return max(after + 1, 0)
        return found
