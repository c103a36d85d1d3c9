"""Which model-free rule turns a follow-up into the query searched: measured, not guessed.

For each dialogue of a set (evalsets/dialogues.jsonl), the conversation is held live (earlier turns
asked with their history, the system's answers as assistant turns); then the last turn is searched
as each candidate rule writes it, and the gold page is looked for among the top-n passages. Run per
recall mode, reported per split (tune / check) with 95% Wilson intervals:

    HF_HUB_OFFLINE=1 RAG_CONFIG=configs/offline.yaml .venv/bin/python bench/conversation_rules.py \\
        evalsets/dialogues.jsonl --mode dense --mode hybrid
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.config import load_settings
from rag.conversation import leans_on_history, rule_query
from rag.evaluate.dialogues import Dialogue, load_dialogues
from rag.evaluate.metrics import share_interval
from rag.evaluate.qa import gold_rank
from rag.pipeline import RagPipeline, SearchOptions
from rag.recall import rrf
from rag.types import Passage, Turn

Rule = Callable[[str, list[Turn]], list[str]]  # -> the queries whose recalls are fused (one: no fusion)

RULES: dict[str, Rule] = {
    "alone": lambda q, h: [q],
    "previous question + follow-up": lambda q, h: [rule_query(q, [t for t in h if t.role == "user"][-1:])],
    "all questions + follow-up": lambda q, h: [rule_query(q, h)],
    "all turns (answers too) + follow-up": lambda q, h: ["\n".join([*(t.content for t in h), q])],
    "fused: alone, all questions + follow-up": lambda q, h: [q, rule_query(q, h)],
}


def searched(pipeline: RagPipeline, queries: list[str], collection: str, options: SearchOptions) -> list[Passage]:
    top_n = pipeline.settings.rerank.top_n
    if len(queries) == 1:
        return list(pipeline.search(queries[0], collection=collection, options=options).passages)
    kb = pipeline.knowledge_base(collection)
    runs = [pipeline.recall(q, kb, options, {}) for q in queries]
    scores = rrf([[p.chunk_id for p in run] for run in runs], pipeline.settings.recall.rrf_k)
    by_id = {p.chunk_id: p for run in runs for p in run}
    return [by_id[c] for c in sorted(scores, key=lambda c: -scores[c])][:top_n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dialogues", type=Path)
    parser.add_argument("--mode", action="append", choices=["dense", "bm25", "hybrid"])
    parser.add_argument("--collection")
    parser.add_argument("--out", type=Path, default=Path("bench/out/conversation-rules.json"))
    args = parser.parse_args()
    settings = load_settings()
    pipeline = RagPipeline(settings)
    pipeline.warm_up()
    collection = pipeline.knowledge_base(args.collection).name
    items: list[Dialogue] = load_dialogues(args.dialogues)
    runs: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    report = {"dialogues": len(items), "collection": collection, "runs": runs}
    for mode in args.mode or [settings.recall.mode]:
        options = SearchOptions(mode=mode)
        hits: dict[str, dict[str, list[bool]]] = {name: {"tune": [], "check": []} for name in RULES}
        gated: dict[str, list[bool]] = {"tune": [], "check": []}
        for item in items:
            history: list[Turn] = []
            for question in item.turns[:-1]:
                answer = pipeline.ask(question, collection=collection, options=options, history=history)
                history += [Turn("user", question), Turn("assistant", answer.text)]
            last = item.turns[-1]
            for name, rule in RULES.items():
                passages = searched(pipeline, rule(last, history), collection, options)
                hits[name][item.split].append(gold_rank(item, passages) is not None)
            chosen = "all questions + follow-up" if leans_on_history(last) else "alone"
            gated[item.split].append(hits[chosen][item.split][-1])
        rows = {name: {split: _share(values) for split, values in by_split.items()} for name, by_split in hits.items()}
        rows["all questions + follow-up, only when it leans on history"] = {s: _share(v) for s, v in gated.items()}
        runs[mode] = rows
        print(f"\n{mode}: gold page in the top {settings.rerank.top_n}")
        for name, by_split in rows.items():
            cells = "  ".join(
                f"{split} {v['hit']:.0%} [{v['ci95'][0]:.0%}, {v['ci95'][1]:.0%}] ({v['n']})"
                for split, v in by_split.items()
            )
            print(f"  {name:58s} {cells}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


def _share(values: list[bool]) -> dict[str, Any]:
    return {"hit": sum(values) / len(values), "ci95": share_interval(sum(values), len(values)), "n": len(values)}


if __name__ == "__main__":
    main()
