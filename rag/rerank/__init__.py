"""Rerankers: score (query, passage) pairs. Backends behind one protocol, picked by name.

Every backend returns one score per passage, in the passages' order, each comparable across
queries (Qwen3-Reranker: P(yes) in [0, 1]; no per-batch rescaling anywhere).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rag.config import RerankSettings
from rag.errors import ConfigError


@runtime_checkable
class Reranker(Protocol):
    name: str

    def warm_up(self) -> None: ...

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]: ...

    def close(self) -> None: ...


def build_reranker(settings: RerankSettings) -> Reranker:
    """A closed set of backends mapped in code; configuration never names an import path."""
    if settings.backend == "local":
        from rag.rerank.local import LocalQwen3Reranker

        return LocalQwen3Reranker(settings)
    if settings.backend == "cross-encoder":
        from rag.rerank.cross_encoder import CrossEncoderReranker

        return CrossEncoderReranker(settings)
    if settings.backend == "vllm":
        from rag.rerank.vllm_http import VllmReranker

        return VllmReranker(settings)
    if settings.backend == "none":
        from rag.rerank.passthrough import RecallOrder

        return RecallOrder()
    raise ConfigError(f"unknown rerank backend {settings.backend!r}")


__all__ = ["Reranker", "build_reranker"]
