"""Tables as Markdown: the one form every loader gives a table in, the chunker keeps whole and
extractive answers quote a row of.

A table is a run of lines that start and end with "|": its header row, the "| --- |" rule, then
one line per row. Cells are one line each (a cell's line breaks become spaces) with "|" escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

_TABLE_RUN = re.compile(r"(?m)^\|.*\|[ \t]*$(?:\n\|.*\|[ \t]*$)+")


def markdown_table(rows: Sequence[Sequence[str | None]]) -> str | None:
    """The rows (the first one the header) as a Markdown table; None unless at least two rows and
    two columns hold text (a one-column box around a paragraph is not a table)."""
    cells = [[" ".join((cell or "").split()).replace("|", "\\|") for cell in row] for row in rows]
    width = max((len(row) for row in cells), default=0)
    cells = [row + [""] * (width - len(row)) for row in cells if any(row)]
    if len(cells) < 2:
        return None
    columns = _merged_columns([[row[i] for row in cells] for i in range(width)])
    if len(columns) < 2:
        return None
    lines = ["| " + " | ".join(column[r] for column in columns) + " |" for r in range(len(cells))]
    rule = "| " + " | ".join("---" for _ in columns) + " |"
    return "\n".join([lines[0], rule, *lines[1:]])


def _merged_columns(columns: list[list[str]]) -> list[list[str]]:
    """A table finder splits a spanning cell over the grid columns it crosses, leaving columns that
    are empty, or that never hold text in a row where their neighbour does: those are one column.
    A column with text in its header alone (a "Completed" box to tick) says nothing and goes."""
    merged: list[list[str]] = []
    for column in columns:
        if merged and not any(a and b for a, b in zip(merged[-1], column, strict=True)):
            merged[-1] = [a or b for a, b in zip(merged[-1], column, strict=True)]
        else:
            merged.append(column)
    return [column for column in merged if any(column[1:])]


def is_table_line(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) > 1 and stripped.startswith("|") and stripped.endswith("|")


def segments(text: str) -> Iterator[tuple[int, int, bool]]:
    """`text` cut into its prose and its Markdown tables, in order: (start, end, is a table)."""
    cursor = 0
    for match in _TABLE_RUN.finditer(text):
        if match.start() > cursor:
            yield cursor, match.start(), False
        yield match.start(), match.end(), True
        cursor = match.end()
    if cursor < len(text):
        yield cursor, len(text), False


def split_cells(line: str) -> list[str]:
    inner = line.strip()[1:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner)]


def row_statements(table: str) -> list[str]:
    """Each data row said with its column headers: "Supports appliances? — Agent-Based: No;
    Passive Network Monitoring: Yes". Every word is the table's; a row alone would lose what its
    values are."""
    lines = [line for line in table.strip().split("\n") if is_table_line(line)]
    if len(lines) < 3:
        return []
    headers = split_cells(lines[0])
    statements = []
    for line in lines[2:]:
        cells = split_cells(line)
        values = [f"{h}: {c}" if h else c for h, c in zip(headers[1:], cells[1:], strict=False) if c]
        if cells and (cells[0] or values):
            statements.append(" — ".join(part for part in (cells[0], "; ".join(values)) if part))
    return statements


def plain_tables(text: str) -> str:
    """`text` with each Markdown table as lines of cell text (rules and bars taken out): what an
    embedder reads, so that a table's chunk is matched on its words, not on its punctuation."""
    return "".join(_plain(text[start:end]) if table else text[start:end] for start, end, table in segments(text))


def _plain(table: str) -> str:
    lines = [line for line in table.split("\n") if not set(line.strip()) <= set("|- ")]
    plain = ["  ".join(cell for cell in split_cells(line) if cell) for line in lines]
    return "\n".join(line for line in plain if line)
