"""Acceptance on real documents: the offline profile answers ../shared/eval/qa-dev.jsonl over
../shared/corpus with the gold page among its cited passages, and refuses the unanswerable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.pipeline import RagPipeline

from .conftest import offline_settings


@pytest.fixture(scope="module")
def questions(shared: Path) -> list[dict]:
    return [json.loads(line) for line in (shared / "eval" / "qa-dev.jsonl").read_text().splitlines() if line]


def test_english_gold_pages_are_cited_and_unanswerable_questions_refused(corpus_index, questions, minilm) -> None:
    data_dir, _ = corpus_index
    rag = RagPipeline(offline_settings(data_dir), embedder=minilm)
    hits, misses, refused, answered = 0, [], [], []
    for q in questions:
        if q["lang"] != "en":
            continue
        answer = rag.ask(q["question"])
        if q["kind"] == "unanswerable":
            (refused if not answer.found else answered).append(q["id"])
            assert answer.citations == () or answer.found
            continue
        pages = {(c.passage.file_name, c.passage.page) for c in answer.citations}
        if any((q["doc"], page) in pages for page in q["pages"]):
            hits += 1
        else:
            misses.append(q["id"])
        assert len(answer.citations) <= 5
    assert hits >= 27, f"gold page cited for {hits}/30; missed {misses}"
    assert answered == [], f"answered unanswerable questions {answered}"
    assert len(refused) == 3
