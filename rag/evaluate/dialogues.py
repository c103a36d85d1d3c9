"""`rag eval --dialogues FILE`: follow-up questions, answered with their conversation and without.

Each dialogue is a list of user turns and the gold file (+ pages) of the last turn's answer. The
conversation is held live: every earlier turn is asked with the history so far and the answer the
system gave becomes the assistant turn, as in a chat. Scored: is a passage of the gold file on a
gold page among the cited passages (the passages the answer was given) of the last turn, asked with
the history and alone; a 95% Wilson interval beside each share, since a set of a few dozen
dialogues moves by ~3 points per dialogue.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from rag.config import RecallMode
from rag.errors import ConfigError
from rag.evaluate.data import read_jsonl
from rag.evaluate.metrics import share_interval
from rag.evaluate.qa import gold_rank
from rag.evaluate.stages import Latencies
from rag.pipeline import RagPipeline, SearchOptions
from rag.types import Answer, Turn


@dataclass(frozen=True)
class Dialogue:
    id: str
    lang: str
    split: str  # "tune" or "check": choices are made on the first, confirmed on the second
    turns: tuple[str, ...]  # the user's turns; the last is the one scored
    doc: str  # the last turn's gold file
    pages: tuple[int, ...]  # its gold pages; empty: any passage of the file (a file without pages)


def load_dialogues(path: Path) -> list[Dialogue]:
    items = []
    for row in read_jsonl(path):
        try:
            turns = tuple(str(t) for t in row["turns"])
            if len(turns) < 2:
                raise ValueError("a dialogue has at least two turns")
            items.append(
                Dialogue(
                    id=str(row["id"]),
                    lang=str(row.get("lang", "")),
                    split=str(row.get("split", "")),
                    turns=turns,
                    doc=str(row["doc"]),
                    pages=tuple(int(p) for p in row.get("pages") or []),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: dialogue {row.get('id', '?')} lacks or mistypes a field: {exc}") from None
    return items


def run_dialogues(
    pipeline: RagPipeline,
    items: Sequence[Dialogue],
    *,
    collection: str | None,
    mode: RecallMode,
    answers: TextIO,
    progress: bool = True,
) -> dict[str, Any]:
    options = SearchOptions(mode=mode)
    latencies = Latencies()
    with_history: dict[str, bool] = {}
    alone: dict[str, bool] = {}
    methods: dict[str, int] = {}
    for item in tqdm(items, desc=f"dialogues ({mode})", unit="d", disable=not progress):
        history: list[Turn] = []
        for question in item.turns[:-1]:
            earlier = pipeline.ask(question, collection=collection, options=options, history=history)
            history += [Turn("user", question), Turn("assistant", earlier.text)]
        last = item.turns[-1]
        followed = pipeline.ask(last, collection=collection, options=options, history=history)
        single = pipeline.ask(last, collection=collection, options=options)
        latencies.add(followed.timings)
        with_history[item.id] = _cited_gold(item, followed)
        alone[item.id] = _cited_gold(item, single)
        method = "as-asked" if followed.query == last else ("rule" if followed.query.endswith(last) else "llm")
        methods[method] = methods.get(method, 0) + 1
        row = {
            "id": item.id,
            "mode": mode,
            "lang": item.lang,
            "split": item.split,
            "turns": list(item.turns),
            "gold": {"doc": item.doc, "pages": list(item.pages)},
            "searched": followed.query,
            "hit_with_history": with_history[item.id],
            "hit_alone": alone[item.id],
            "with_history": followed.to_dict(),
            "alone": single.to_dict(),
        }
        answers.write(json.dumps(row, ensure_ascii=False) + "\n")
    groups: dict[str, list[Dialogue]] = {"all": list(items)}
    for item in items:
        for key in (item.lang, item.split):
            if key:
                groups.setdefault(key, []).append(item)
    return {
        "mode": mode,
        "reranker": pipeline.reranker.name,
        "rewrite": pipeline.rewriter.method,
        "methods": methods,
        "groups": {name: _group(group, with_history, alone) for name, group in groups.items()},
        "latency_ms": latencies.summary_ms(),
    }


def _cited_gold(item: Dialogue, answer: Answer) -> bool:
    return gold_rank(item, [c.passage for c in answer.citations]) is not None


def _group(items: list[Dialogue], with_history: dict[str, bool], alone: dict[str, bool]) -> dict[str, Any]:
    n = len(items)
    hits_with = sum(with_history[i.id] for i in items)
    hits_alone = sum(alone[i.id] for i in items)
    return {
        "dialogues": n,
        "with_history": {"hit": hits_with / n, "ci95": share_interval(hits_with, n)},
        "alone": {"hit": hits_alone / n, "ci95": share_interval(hits_alone, n)},
        "missed_with_history": sorted(i.id for i in items if not with_history[i.id]),
    }
