"""`none`: keep recall order. Scores fall from 1 by rank so that ordering them keeps recall order."""

from __future__ import annotations

from collections.abc import Sequence

from rag.backends import NO_RERANKER
from rag.config import RerankSettings
from rag.rerank import Reranker


class RecallOrder(Reranker):
    name = NO_RERANKER
    model_name = "recall order"
    device = ""  # no model

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings

    def warm_up(self) -> None:
        return None

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        n = len(passages)
        return [1.0 - i / n for i in range(n)] if n else []
