"""Recall: the top-k chunks by dense similarity (Chroma), by BM25 (the lexical index), or both
fused into one list before the reranker.

Fusion is a few lines of arithmetic over at most 2 x top_k candidates, done here rather than with
ranx (whose numba start-up would land on a query's latency). Candidates found by one side only
get 0 from the other side in weighted fusion (they were below its top-k) and no term in RRF.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rag.config import RecallMode, RecallSettings
from rag.errors import ConfigError
from rag.lexical.index import DocFilter, LexicalIndex
from rag.store import KnowledgeBase
from rag.types import DocumentRecord, Passage

# Metadata a request may filter on, mapped to the chunk metadata key.
FILTER_KEYS = {
    "file": "file_name",
    "file_name": "file_name",
    "doc_id": "doc_id",
    "file_type": "file_type",
    "source": "source",
}


def _clause(key: str, value: Any) -> tuple[str, list[str]]:
    if key not in FILTER_KEYS:
        raise ConfigError(f"unknown filter {key!r}; use one of {sorted(set(FILTER_KEYS))}")
    values = [str(v) for v in value] if isinstance(value, list | tuple | set) else [str(value)]
    return FILTER_KEYS[key], values


def chroma_where(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """{"file": "a.pdf", "file_type": ["pdf", "docx"]} -> a Chroma where clause."""
    if not filters:
        return None
    clauses: list[dict[str, Any]] = []
    for key, value in filters.items():
        field, values = _clause(key, value)
        clauses.append({field: {"$in": values}} if isinstance(value, list | tuple | set) else {field: values[0]})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def document_filter(filters: dict[str, Any] | None) -> DocFilter | None:
    """The same filters, applied to manifest records (for BM25, which has no Chroma where)."""
    if not filters:
        return None
    clauses = [_clause(key, value) for key, value in filters.items()]

    def fields(record: DocumentRecord) -> dict[str, str]:
        return {
            "file_name": record.source.replace("\\", "/").rsplit("/", 1)[-1],
            "doc_id": record.doc_id,
            "file_type": record.file_type,
            "source": record.source,
        }

    def matches(record: DocumentRecord) -> bool:
        values = fields(record)
        return all(values[field] in allowed for field, allowed in clauses)

    return matches


def rrf(runs: Sequence[Sequence[str]], k: int) -> dict[str, float]:
    """Reciprocal rank fusion: sum over runs of 1 / (k + rank)."""
    fused: dict[str, float] = {}
    for run in runs:
        for rank, item in enumerate(run, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return fused


def weighted(runs: Sequence[Mapping[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """Each run's scores min-max normalised to [0, 1], then mixed by weight."""
    fused: dict[str, float] = {}
    for run, weight in zip(runs, weights, strict=True):
        if not run:
            continue
        values = np.fromiter(run.values(), dtype=np.float64, count=len(run))
        low, span = float(values.min()), float(values.max() - values.min())
        for item, score in run.items():
            normalised = (score - low) / span if span > 0 else 1.0
            fused[item] = fused.get(item, 0.0) + weight * normalised
    return fused


def recall(
    kb: KnowledgeBase,
    lexical: LexicalIndex | None,
    query: str,
    vector: np.ndarray | None,
    *,
    k: int,
    mode: RecallMode,
    settings: RecallSettings,
    filters: dict[str, Any] | None = None,
) -> list[Passage]:
    dense: list[Passage] = []
    if mode != "bm25":
        if vector is None:
            raise ValueError(f"recall mode {mode!r} needs the query vector")
        dense = kb.query(vector, k, where=chroma_where(filters))
    lexical_hits: list[Passage] = []
    if mode != "dense":
        if lexical is None:
            raise ValueError(f"recall mode {mode!r} needs a lexical index")
        hits = lexical.search(query, k, doc_filter=document_filter(filters))
        lexical_hits = [replace(p, bm25_score=p.recall_score) for p in kb.passages(hits)]
    if mode == "dense":
        return dense
    if mode == "bm25":
        return lexical_hits
    return fuse(dense, lexical_hits, k=k, settings=settings)


def fuse(dense: list[Passage], lexical: list[Passage], *, k: int, settings: RecallSettings) -> list[Passage]:
    by_id: dict[str, Passage] = {p.chunk_id: p for p in dense}
    for passage in lexical:
        known = by_id.get(passage.chunk_id)
        by_id[passage.chunk_id] = passage if known is None else replace(known, bm25_score=passage.bm25_score)
    if settings.fusion == "rrf":
        scores = rrf([[p.chunk_id for p in dense], [p.chunk_id for p in lexical]], settings.rrf_k)
    else:
        scores = weighted(
            [{p.chunk_id: p.recall_score for p in dense}, {p.chunk_id: p.recall_score for p in lexical}],
            [settings.dense_weight, 1.0 - settings.dense_weight],
        )
    order = sorted(by_id, key=lambda chunk_id: -scores[chunk_id])
    return [
        replace(by_id[chunk_id], recall_rank=rank, recall_score=scores[chunk_id])
        for rank, chunk_id in enumerate(order[:k], start=1)
    ]
