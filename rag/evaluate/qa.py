"""`rag eval --qa FILE`: questions with a gold file and pages, over an ingested collection.

Scored: is a gold page among the first 1 / 5 passages after recall and after reranking (a passage
spanning pages counts for each), hit@k curves for the plot, the share of unanswerable questions
refused; each answer with its citations is written to a JSONL file for reading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TextIO

from tqdm import tqdm

from rag.config import RecallMode
from rag.evaluate.data import QaItem
from rag.evaluate.metrics import CURVE_DEPTHS, share_interval
from rag.evaluate.stages import Latencies, run_stages
from rag.pipeline import RagPipeline, SearchOptions
from rag.store import KnowledgeBase
from rag.types import Passage


def passage_pages(passage: Passage) -> set[int]:
    pages = passage.metadata.get("pages") or ([passage.page] if passage.page is not None else [])
    return {int(p) for p in pages}


class Gold(Protocol):
    @property
    def doc(self) -> str: ...
    @property
    def pages(self) -> tuple[int, ...]: ...


def gold_rank(item: Gold, passages: Sequence[Passage]) -> int | None:
    """1-based rank of the first passage from the gold file on a gold page (any passage of the
    file when no page is given: a file without pages), or None."""
    gold = set(item.pages)
    for rank, passage in enumerate(passages, start=1):
        if passage.file_name == item.doc and (not gold or passage_pages(passage) & gold):
            return rank
    return None


def _hit_share(ranks: Sequence[int | None], k: int) -> float:
    return _hits(ranks, k) / len(ranks) if ranks else 0.0


def _hits(ranks: Sequence[int | None], k: int) -> int:
    return sum(1 for r in ranks if r is not None and r <= k)


def _hit_figures(ranks: Sequence[int | None]) -> dict[str, Any]:
    """hit@1 and hit@5, each with its 95% interval."""
    figures: dict[str, Any] = {}
    for k in (1, 5):
        figures[f"hit@{k}"] = _hit_share(ranks, k)
        figures[f"hit@{k}_ci95"] = share_interval(_hits(ranks, k), len(ranks))
    return figures


def run_qa(
    pipeline: RagPipeline,
    kb: KnowledgeBase,
    items: Sequence[QaItem],
    mode: RecallMode,
    answers: TextIO,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    options = SearchOptions(mode=mode)
    top_n = pipeline.settings.rerank.top_n
    latencies = Latencies()
    recall_ranks: dict[str, int | None] = {}
    rerank_ranks: dict[str, int | None] = {}
    refused: dict[str, bool] = {}
    for item in tqdm(items, desc=f"questions ({mode})", unit="q", disable=not progress):
        staged = run_stages(pipeline, kb, item.question, options)
        answer = pipeline.answer(item.question, staged.result(top_n))
        latencies.add(answer.timings)
        refused[item.id] = not answer.found
        if item.answerable:
            recall_ranks[item.id] = gold_rank(item, staged.recalled)
            rerank_ranks[item.id] = gold_rank(item, staged.ranked)
        row = {
            "id": item.id,
            "mode": mode,
            "lang": item.lang,
            "gold": {"doc": item.doc, "pages": list(item.pages)},
            "gold_rank_recall": recall_ranks.get(item.id),
            "gold_rank_reranked": rerank_ranks.get(item.id),
            **answer.to_dict(),
            **{f"expected_{k}": v for k, v in item.extra.items()},
        }
        answers.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {
        "mode": mode,
        "reranker": pipeline.reranker.name,
        "groups": {name: _group(group, recall_ranks, rerank_ranks, refused) for name, group in _groups(items).items()},
        "latency_ms": latencies.summary_ms(),
    }


def _groups(items: Sequence[QaItem]) -> dict[str, list[QaItem]]:
    groups: dict[str, list[QaItem]] = {"all": list(items)}
    for item in items:
        groups.setdefault(item.lang or "?", []).append(item)
    return groups


def _group(
    items: list[QaItem],
    recall_ranks: dict[str, int | None],
    rerank_ranks: dict[str, int | None],
    refused: dict[str, bool],
) -> dict[str, Any]:
    answerable = [i.id for i in items if i.answerable]
    unanswerable = [i.id for i in items if not i.answerable]
    before = [recall_ranks[i] for i in answerable]
    after = [rerank_ranks[i] for i in answerable]
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall": _hit_figures(before),
        "reranked": _hit_figures(after),
        "curve": {
            "recall": [_hit_share(before, k) for k in CURVE_DEPTHS],
            "reranked": [_hit_share(after, k) for k in CURVE_DEPTHS],
        },
        "refused_unanswerable": (sum(refused[i] for i in unanswerable) / len(unanswerable)) if unanswerable else None,
        "refused_answerable": (sum(refused[i] for i in answerable) / len(answerable)) if answerable else None,
        "missed": sorted(i for i in answerable if (rerank_ranks[i] or 99) > 5),
    }


def open_answers(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8")
