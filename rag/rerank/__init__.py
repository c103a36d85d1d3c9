"""Rerankers: score (query, passage) pairs. Backends behind one protocol, picked by name.

Every backend returns one score per passage, in the passages' order, each comparable across
queries (Qwen3-Reranker: P(yes) in [0, 1]; no per-batch rescaling anywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from rag.backends import RERANKERS, Backend, backend_class
from rag.config import RerankSettings


@runtime_checkable
class Reranker(Backend, Protocol):
    """A backend's constructor takes the `RerankSettings`; `name` is its key in rag.backends.RERANKERS."""

    # Scores through the Qwen3 reranker template (what rag.selfcheck checks); a bi-encoder reads none.
    reads_template: ClassVar[bool] = True

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]: ...

    def template_tokens(self, query: str, passage: str, *, instruction: str | None = None) -> int | None:
        """How many tokens the model actually reads for this pair as configured (the ids fed in-process,
        usage.prompt_tokens when served): what tells whether the Qwen3 template was applied once,
        not at all or twice (rag.selfcheck). None when it cannot tell (the self-check then warns)."""
        return None


def build_reranker(settings: RerankSettings) -> Reranker:
    """The configured backend, not yet warmed up."""
    reranker: Reranker = backend_class(RERANKERS[settings.backend])(settings)
    return reranker


__all__ = ["Reranker", "build_reranker"]
