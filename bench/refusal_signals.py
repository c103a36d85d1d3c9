"""Which "not found" signal separates the weakest answerable question from the unanswerable ones
over the passages the offline profile answers from? Measured, per question set split.

    HF_HUB_OFFLINE=1 RAG_CONFIG=configs/offline.yaml .venv/bin/python bench/refusal_signals.py \\
        evalsets/qa.jsonl --mode hybrid [--collection NAME]

For every question the passages the answer would be written from (the top n after recall and the
configured reranker) give:
  * `extractive`: the best similarity of one of their sentences to the question (today's floor),
  * `second_opinion`: with the `embedding` reranker, its model's best similarity among the sentences
    the embedder put closest (English questions only: the languages it reads),
  * `dense_best`: the best cosine of the question to one of those passages,
  * `agreement`: how many of the top n are also in the other recall's top n (dense vs BM25),
and the gold page's rank. For each signal: the weakest answerable and the strongest unanswerable
question of the tuning half, the threshold between them (when there is one), and what that
threshold does on the check half (answerable refused, unanswerable answered).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import load_settings
from rag.evaluate.data import QaItem, load_qa
from rag.evaluate.qa import gold_rank
from rag.pipeline import RagPipeline, SearchOptions

SIGNALS = ("extractive", "second_opinion", "dense_best", "agreement")


def signals(pipeline: RagPipeline, item: QaItem, collection: str, mode: str) -> dict[str, Any]:
    top_n = pipeline.settings.rerank.top_n
    kb = pipeline.knowledge_base(collection)
    timings: dict[str, float] = {}
    options = SearchOptions(mode=mode)  # type: ignore[arg-type]
    recalled = pipeline.recall(item.question, kb, options, timings)
    passages = pipeline.rerank(item.question, recalled, options, timings).passages
    dense = pipeline.recall(item.question, kb, SearchOptions(mode="dense"), timings)[:top_n]
    lexical = pipeline.recall(item.question, kb, SearchOptions(mode="bm25"), timings)[:top_n]
    query = pipeline.embedder.embed_query(item.question)
    vectors = pipeline.embedder.embed_documents([p.text for p in passages])
    closest = pipeline.extractive.closest(item.question, passages, min_similarity=-1.0)
    shared = {p.chunk_id for p in dense} & {p.chunk_id for p in lexical}
    return {
        "id": item.id,
        "lang": item.lang,
        "answerable": item.answerable,
        "gold_rank": gold_rank(item, passages) if item.answerable else None,
        "extractive": round(closest.best, 4),
        "second_opinion": round(closest.second, 4) if closest.second is not None else None,
        "dense_best": round(float(np.max(vectors @ query)), 4) if len(passages) else -1.0,
        "agreement": len(shared),
    }


def threshold(rows: list[dict[str, Any]], signal: str) -> dict[str, Any]:
    """On the tuning half: the weakest answerable question whose gold page was found, the strongest
    unanswerable one, and the midpoint when they are separated."""
    rows = [r for r in rows if r[signal] is not None]
    found = [r[signal] for r in rows if r["answerable"] and r["gold_rank"] is not None]
    unanswerable = [r[signal] for r in rows if not r["answerable"]]
    if not found or not unanswerable:
        return {"weakest_answerable": None, "strongest_unanswerable": None, "threshold": None}
    weakest, strongest = min(found), max(unanswerable)
    return {
        "weakest_answerable": weakest,
        "strongest_unanswerable": strongest,
        "threshold": (weakest + strongest) / 2 if weakest > strongest else None,
    }


def applied(rows: list[dict[str, Any]], signal: str, cut: float) -> dict[str, Any]:
    rows = [r for r in rows if r[signal] is not None]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "answerable_refused": sum(r[signal] < cut for r in answerable),
        "answerable": len(answerable),
        "unanswerable_answered": sum(r[signal] >= cut for r in unanswerable),
        "unanswerable": len(unanswerable),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("--mode", default="hybrid", choices=["dense", "bm25", "hybrid"])
    parser.add_argument("--collection")
    parser.add_argument("--out", type=Path, default=Path("bench/out/refusal-signals.json"))
    args = parser.parse_args()
    pipeline = RagPipeline(load_settings())
    pipeline.warm_up(generator=False)
    collection = pipeline.knowledge_base(args.collection).name
    items = load_qa(args.questions)
    splits = {json.loads(line)["id"]: json.loads(line).get("split", "") for line in args.questions.open()}
    rows = [{**signals(pipeline, item, collection, args.mode), "split": splits[item.id]} for item in items]
    tune = [r for r in rows if r["split"] == "tune"]
    check = [r for r in rows if r["split"] == "check"]
    report: dict[str, Any] = {"mode": args.mode, "collection": collection, "signals": {}, "rows": rows}
    for signal in SIGNALS:
        chosen = threshold(tune, signal)
        if chosen["threshold"] is not None:
            chosen["check"] = applied(check, signal, chosen["threshold"])
            chosen["tune"] = applied(tune, signal, chosen["threshold"])
        report["signals"][signal] = chosen
        print(signal, json.dumps(chosen))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
