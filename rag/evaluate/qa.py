"""`rag eval --qa FILE`: questions with a gold file and pages, over an ingested collection.

Scored: is a gold page among the first 1 / 5 passages after recall and after reranking (a passage
spanning pages counts for each), hit@k curves for the plot, the share of unanswerable questions
refused; each answer with its citations is written to a JSONL file for reading.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
        if passage.file_name == item.doc and (not gold or set(passage.pages) & gold):
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
    answer_ranks: dict[str, int | None] = {}
    cited_ranks: dict[str, int | None] = {}
    for item in tqdm(items, desc=f"questions ({mode})", unit="q", disable=not progress):
        staged = run_stages(pipeline, kb, item.question, options)
        answer = pipeline.answer(item.question, staged.result(top_n))
        latencies.add(answer.timings)
        refused[item.id] = not answer.found
        if item.answerable:
            recall_ranks[item.id] = gold_rank(item, staged.recalled)
            rerank_ranks[item.id] = gold_rank(item, staged.ranked)
            # What the reader is shown: the answer's passages (none when refused), and those its text cites.
            answer_ranks[item.id] = gold_rank(item, [c.passage for c in answer.citations])
            cited_ranks[item.id] = gold_rank(item, [c.passage for c in answer.citations if c.cited])
        row = {
            "id": item.id,
            "mode": mode,
            "lang": item.lang,
            "gold": {"doc": item.doc, "pages": list(item.pages)},
            "gold_rank_recall": recall_ranks.get(item.id),
            "gold_rank_reranked": rerank_ranks.get(item.id),
            "gold_rank_answer": answer_ranks.get(item.id),
            "gold_cited": cited_ranks.get(item.id) is not None if item.answerable else None,
            **answer.to_dict(),
            **{f"expected_{k}": v for k, v in item.extra.items()},
        }
        answers.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {
        "mode": mode,
        "reranker": pipeline.reranker.name,
        "groups": {
            name: _group(group, Ranks(recall_ranks, rerank_ranks, answer_ranks, cited_ranks), refused)
            for name, group in _groups(items).items()
        },
        "latency_ms": latencies.summary_ms(),
    }


def _groups(items: Sequence[QaItem]) -> dict[str, list[QaItem]]:
    """All, each language, and where the set is split, each half and each half's languages."""
    groups: dict[str, list[QaItem]] = {"all": list(items)}
    for item in items:
        groups.setdefault(item.lang or "?", []).append(item)
    for item in items:
        if item.split:
            groups.setdefault(item.split, []).append(item)
            groups.setdefault(f"{item.split}/{item.lang or '?'}", []).append(item)
    return groups


@dataclass(frozen=True)
class Ranks:
    """Each answerable question's gold rank: in recall, after reranking, among the answer's passages
    (None when refused) and among the passages its text cites."""

    recall: dict[str, int | None]
    reranked: dict[str, int | None]
    answer: dict[str, int | None]
    cited: dict[str, int | None]


def _group(items: list[QaItem], ranks: Ranks, refused: dict[str, bool]) -> dict[str, Any]:
    answerable = [i.id for i in items if i.answerable]
    unanswerable = [i.id for i in items if not i.answerable]
    before = [ranks.recall[i] for i in answerable]
    after = [ranks.reranked[i] for i in answerable]
    answered = sum(ranks.answer[i] is not None for i in answerable)
    cited = sum(ranks.cited[i] is not None for i in answerable)
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall": _hit_figures(before),
        "reranked": _hit_figures(after),
        # The end-to-end figure: answered (not refused) with a gold page among the answer's passages.
        "answered_gold": answered / len(answerable) if answerable else 0.0,
        "answered_gold_ci95": share_interval(answered, len(answerable)),
        "cited_gold": cited / len(answerable) if answerable else 0.0,
        "cited_gold_ci95": share_interval(cited, len(answerable)),
        "curve": {
            "recall": [_hit_share(before, k) for k in CURVE_DEPTHS],
            "reranked": [_hit_share(after, k) for k in CURVE_DEPTHS],
        },
        "refused_unanswerable": (sum(refused[i] for i in unanswerable) / len(unanswerable)) if unanswerable else None,
        "refused_answerable": (sum(refused[i] for i in answerable) / len(answerable)) if answerable else None,
        "missed": sorted(i for i in answerable if ranks.answer[i] is None),
    }


def open_answers(path: Path) -> TextIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8")
