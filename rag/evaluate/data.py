"""Reading evaluation sets: BEIR folders (corpus.jsonl, queries.jsonl, qrels/<split>.tsv) and
question sets with gold file + pages (one JSON object per line, as ../shared/eval/qa-dev.jsonl)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rag.errors import ConfigError


@dataclass(frozen=True)
class BeirSet:
    corpus: dict[str, str]  # doc id -> "title text"
    queries: dict[str, str]  # only the queries that have judgements in the split
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> relevance


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    lang: str
    doc: str  # gold file name; "none" for unanswerable questions
    pages: tuple[int, ...]
    kind: str = ""
    split: str = ""  # "tune" or "check" where the set is split: figures are then given per half
    extra: dict = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable" and self.doc not in ("", "none")


def read_jsonl(path: Path) -> Iterator[dict]:
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ConfigError(f"{path}:{number}: not JSON: {exc.msg}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_beir(folder: Path, *, split: str = "test", limit: int | None = None) -> BeirSet:
    """A BEIR folder. `limit` keeps the first N judged queries (for a quick run)."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for required in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path):
        if not required.is_file():
            raise ConfigError(f"{folder} is not a BEIR folder: {required.relative_to(folder)} is missing")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(str(row["query-id"]), {})[str(row["corpus-id"])] = int(row["score"])
    all_queries = {str(q["_id"]): str(q["text"]) for q in read_jsonl(folder / "queries.jsonl")}
    judged = [qid for qid in all_queries if qid in qrels]
    if limit is not None:
        judged = judged[:limit]
    corpus = {
        str(d["_id"]): f"{d.get('title', '')} {d.get('text', '')}".strip() for d in read_jsonl(folder / "corpus.jsonl")
    }
    return BeirSet(corpus, {qid: all_queries[qid] for qid in judged}, {qid: qrels[qid] for qid in judged})


def load_qa(path: Path) -> list[QaItem]:
    items = []
    for row in read_jsonl(path):
        try:
            items.append(
                QaItem(
                    id=str(row["id"]),
                    question=str(row["question"]),
                    lang=str(row.get("lang", "")),
                    doc=str(row.get("doc", "")),
                    pages=tuple(int(p) for p in row.get("pages", []) or []),
                    kind=str(row.get("kind", "")),
                    split=str(row.get("split", "")),
                    extra={k: v for k, v in row.items() if k in ("answer", "evidence")},
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: question {row.get('id', '?')} lacks or mistypes a field: {exc}") from None
    return items
