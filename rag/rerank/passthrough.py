"""`none`: keep recall order. Scores fall from 1 by rank so that ordering them keeps recall order."""

from __future__ import annotations

from collections.abc import Sequence


class RecallOrder:
    name = "none"

    def warm_up(self) -> None:
        return None

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        n = len(passages)
        return [1.0 - i / n for i in range(n)] if n else []

    def close(self) -> None:
        return None
