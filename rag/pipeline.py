"""The query side, stage by stage: embed the query -> recall top-k -> rerank -> keep top-n.

Every stage is timed. A reranker that fails falls back to recall order and the result says so
(`degraded: ["rerank"]`), or the request fails when `rerank.on_failure: fail`: never silently.
A GPU-sized reranker on a CPU reranks fewer, shorter candidates and the result says that too.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from rag._models import CPU_HEAVY_PARAMETERS
from rag.config import Settings
from rag.embedding import Embedder, build_embedder
from rag.errors import BackendError, ConfigError
from rag.rerank import Reranker, build_reranker
from rag.store import KnowledgeBase, VectorStore
from rag.types import Passage, SearchResult

log = logging.getLogger(__name__)

# Metadata a request may filter on, mapped to the chunk metadata key.
FILTER_KEYS = {
    "file": "file_name",
    "file_name": "file_name",
    "doc_id": "doc_id",
    "file_type": "file_type",
    "source": "source",
}


@dataclass(frozen=True)
class SearchOptions:
    """Per-request choices; None means the configured default (never `or`: 0 and "" are values)."""

    top_k: int | None = None
    top_n: int | None = None
    instruction: str | None = None
    filters: dict[str, Any] | None = None
    min_score: float | None = None


def chroma_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """{"file": "a.pdf", "file_type": ["pdf", "docx"]} -> a Chroma where clause."""
    if not filters:
        return None
    clauses: list[dict[str, Any]] = []
    for key, value in filters.items():
        if key not in FILTER_KEYS:
            raise ConfigError(f"unknown filter {key!r}; use one of {sorted(set(FILTER_KEYS))}")
        field = FILTER_KEYS[key]
        if isinstance(value, list | tuple | set):
            clauses.append({field: {"$in": [str(v) for v in value]}})
        else:
            clauses.append({field: str(value)})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class RagPipeline:
    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        store: VectorStore | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder if embedder is not None else build_embedder(settings.embedding)
        self.reranker = reranker if reranker is not None else build_reranker(settings.rerank)
        self.store = store if store is not None else VectorStore(settings)
        self._kbs: dict[str, KnowledgeBase] = {}

    def warm_up(self) -> None:
        self.embedder.warm_up()
        self.reranker.warm_up()

    def close(self) -> None:
        self.reranker.close()

    def knowledge_base(self, collection: str | None) -> KnowledgeBase:
        name = collection if collection is not None else self.settings.collection
        if name not in self._kbs:
            kb = self.store.open(name)
            kb.check_model(self.embedder.model_name, None)
            self._kbs[name] = kb
        return self._kbs[name]

    def search(
        self, query: str, *, collection: str | None = None, options: SearchOptions | None = None
    ) -> SearchResult:
        options = options or SearchOptions()
        timings: dict[str, float] = {}
        kb = self.knowledge_base(collection)
        started = time.perf_counter()
        vector = self.embedder.embed_query(query)
        timings["embed"] = time.perf_counter() - started
        top_k = options.top_k if options.top_k is not None else self.settings.recall.top_k
        started = time.perf_counter()
        recalled = kb.query(vector, top_k, where=chroma_where(options.filters))
        timings["recall"] = time.perf_counter() - started
        passages, degraded, notes = self._rerank(query, recalled, options, timings)
        return SearchResult(query=query, passages=tuple(passages), timings=timings, degraded=degraded, notes=notes)

    def _rerank(
        self, query: str, recalled: list[Passage], options: SearchOptions, timings: dict[str, float]
    ) -> tuple[list[Passage], tuple[str, ...], tuple[str, ...]]:
        rerank = self.settings.rerank
        top_n = options.top_n if options.top_n is not None else rerank.top_n
        min_score = options.min_score if options.min_score is not None else rerank.min_score
        instruction = options.instruction if options.instruction is not None else rerank.instruction
        if self.reranker.name == "none" or not recalled:
            return recalled[:top_n], (), ()
        candidates, notes = self._cpu_budget(recalled)
        started = time.perf_counter()
        try:
            scores = self.reranker.score(query, [p.text for p in candidates], instruction=instruction)
        except BackendError as exc:
            timings["rerank"] = time.perf_counter() - started
            if rerank.on_failure == "fail":
                raise
            log.warning("reranker failed, answering in recall order: %s", exc)
            return recalled[:top_n], ("rerank",), (*notes, f"rerank failed: {exc}")
        timings["rerank"] = time.perf_counter() - started
        scored = [replace(p, rerank_score=s) for p, s in zip(candidates, scores, strict=True)]
        scored.sort(key=lambda p: (-(p.rerank_score or 0.0), p.recall_rank))
        if min_score is not None:
            scored = [p for p in scored if (p.rerank_score or 0.0) >= min_score]
        return scored[:top_n], (), notes

    def _cpu_budget(self, recalled: list[Passage]) -> tuple[list[Passage], tuple[str, ...]]:
        """A GPU-sized in-process reranker on a CPU: rerank the head of the recall list only."""
        device = getattr(self.reranker, "device", "")
        parameters = getattr(self.reranker, "parameter_count", 0)
        rerank = self.settings.rerank
        if device != "cpu" or parameters < CPU_HEAVY_PARAMETERS or len(recalled) <= rerank.cpu_max_candidates:
            return recalled, ()
        note = (
            f"rerank on CPU: {rerank.cpu_max_candidates} of {len(recalled)} candidates "
            f"(a {parameters / 1e6:.0f}M-parameter model reads ~150 tokens/s here; use a GPU or the vllm backend)"
        )
        return recalled[: rerank.cpu_max_candidates], (note,)
