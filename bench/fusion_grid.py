"""Which fusion of dense and BM25 recall puts a gold page among the first five, per half and language
of a split question set? One recall of each kind per question, then every fusion in arithmetic.

    HF_HUB_OFFLINE=1 RAG_CONFIG=configs/offline.yaml RAG_DATA_DIR=DIR .venv/bin/python bench/fusion_grid.py \\
        evalsets/qa.jsonl

DIR holds the collection ingested with the chunking to judge (RAG_CHUNKING__MAX_TOKENS=...): one
run per chunk size. Rows: dense, bm25, weighted fusion by dense weight, RRF by k; each with and
without one passage per page (rerank.distinct_pages). With the `embedding` reranker configured
(configs/offline.yaml), also: the configured recall order (one per page) with the reranker's cosine
order on its first N pages fused in by RRF (k), for the questions in the languages it reads
(rerank.languages), as the pipeline does with rerank.max_candidates and rerank.fuse_recall_rrf_k.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from rag.config import load_settings
from rag.evaluate.data import QaItem, load_qa
from rag.evaluate.qa import gold_rank
from rag.generate._language import language_of
from rag.pipeline import RagPipeline, SearchOptions, one_per_page
from rag.recall import fuse, rrf, weighted
from rag.types import Passage

Runs = dict[str, list[Passage]]
# How many of recall's first pages the embedding reranker rescores, in the rows that try it.
DEPTHS = (5, 10, 20, 30)


def fused(runs: Runs, scores: dict[str, float]) -> list[Passage]:
    by_id = {p.chunk_id: p for p in runs["dense"] + runs["bm25"]}
    return [by_id[c] for c in sorted(scores, key=lambda c: -scores[c])]


def hits(group: list[QaItem], order: Callable[[Runs], list[Passage]], runs: dict[str, Runs], per_page: bool) -> int:
    """Questions of `group` with a gold page among the first five of `order`."""
    found = 0
    for item in group:
        ranked = order(runs[item.id])
        head = one_per_page(ranked, 5) if per_page else ranked[:5]
        found += gold_rank(item, head) is not None
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("questions", type=Path)
    args = parser.parse_args()
    pipeline = RagPipeline(load_settings())
    pipeline.warm_up(generator=False)
    kb = pipeline.knowledge_base(None)
    items = [i for i in load_qa(args.questions) if i.answerable]
    modes = ("dense", "bm25")
    runs: dict[str, Runs] = {}
    for item in items:
        runs[item.id] = {m: pipeline.recall(item.question, kb, SearchOptions(mode=m), {}) for m in modes}  # type: ignore[arg-type]
    orders: dict[str, Callable[[Runs], list[Passage]]] = {"dense": lambda r: r["dense"], "bm25": lambda r: r["bm25"]}
    for w in (0.3, 0.5, 0.7):
        orders[f"weighted {w}"] = lambda r, w=w: fused(  # type: ignore[misc]
            r, weighted([{p.chunk_id: p.recall_score for p in r[m]} for m in modes], [w, 1 - w])
        )
    for k in (10, 60):
        orders[f"rrf k={k}"] = lambda r, k=k: fused(  # type: ignore[misc]
            r, rrf([[p.chunk_id for p in r[m]] for m in modes], k)
        )
    cells = [(split, lang) for split in ("tune", "check") for lang in ("en", "zh")]
    print("| order | " + " | ".join(f"{s} {lang}" for s, lang in cells) + " |")
    for per_page in (False, True):
        for name, order in orders.items():
            row = [
                f"{hits(g, order, runs, per_page)}/{len(g)}"
                for g in ([i for i in items if (i.split, i.lang) == c] for c in cells)
            ]
            print(f"| {name}{', one per page' if per_page else ''} | " + " | ".join(row) + " |")
    if pipeline.reranker.name == "embedding":
        reranked_rows(pipeline, items, runs, cells)


def reranked_rows(
    pipeline: RagPipeline, items: list[QaItem], runs: dict[str, Runs], cells: list[tuple[str, str]]
) -> None:
    """The configured recall order, its first N pages rescored by the embedding reranker and fused."""
    settings = pipeline.settings.recall
    languages = pipeline.settings.rerank.languages
    heads: dict[str, list[Passage]] = {}
    cosines: dict[str, dict[str, float]] = {}
    for item in items:
        recalled = fuse(runs[item.id]["dense"], runs[item.id]["bm25"], k=settings.top_k, settings=settings)
        heads[item.id] = one_per_page(recalled, len(recalled))
        if languages is None or language_of(item.question) in languages:
            head = heads[item.id][: max(DEPTHS)]
            scores = pipeline.reranker.score(item.question, [p.text for p in head])
            cosines[item.id] = {p.chunk_id: s for p, s in zip(head, scores, strict=True)}
    for depth in DEPTHS:
        for k in (10, 60):

            def order(item: QaItem, depth: int = depth, k: int = k) -> list[Passage]:
                pool = heads[item.id]
                if item.id not in cosines:
                    return pool
                head = pool[:depth]
                by_cosine = sorted(head, key=lambda p: -cosines[item.id][p.chunk_id])
                fused = rrf([[p.chunk_id for p in head], [p.chunk_id for p in by_cosine]], k)
                return sorted(head, key=lambda p: -fused[p.chunk_id]) + pool[depth:]

            row = [
                f"{sum(gold_rank(i, order(i)[:5]) is not None for i in g)}/{len(g)}"
                for g in ([i for i in items if (i.split, i.lang) == c] for c in cells)
            ]
            name = f"{settings.fusion}, one per page, {pipeline.reranker.model_name} on the first {depth} fused (k={k})"
            print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
