"""The two evaluations end to end, from settings to a report dict (what `rag eval` prints)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rag.config import RecallMode, Settings
from rag.evaluate.beir import build_collection, collection_name, run_queries, summarize
from rag.evaluate.cache import CachedEncoder
from rag.evaluate.data import load_beir, load_qa
from rag.evaluate.dialogues import load_dialogues, run_dialogues
from rag.evaluate.qa import open_answers, run_qa
from rag.pipeline import RagPipeline


def evaluate_beir(
    settings: Settings,
    folder: Path,
    modes: list[RecallMode],
    *,
    collection: str | None = None,
    split: str = "test",
    limit: int | None = None,
    progress: bool = True,
    pipeline: RagPipeline | None = None,
) -> dict[str, Any]:
    data = load_beir(folder, split=split, limit=limit)
    pipeline = pipeline if pipeline is not None else RagPipeline(settings)
    pipeline.warm_up(generator=False)
    name = collection or collection_name(folder, pipeline.embedder.model_name)
    encoder = CachedEncoder(pipeline.embedder, settings.data_dir / "cache" / "embeddings", progress=progress)
    started = time.perf_counter()
    try:
        kb, reused = build_collection(pipeline, data, name, encoder, source=str(folder.resolve() / "corpus.jsonl"))
    finally:
        encoder.close()
    build_seconds = time.perf_counter() - started
    runs = [summarize(run_queries(pipeline, kb, data.queries, mode, progress=progress), data) for mode in modes]
    return {
        "kind": "beir",
        "dataset": str(folder),
        "split": split,
        "queries": len(data.queries),
        "corpus": len(data.corpus),
        "collection": name,
        "reused": reused,
        "embedding_model": pipeline.embedder.model_name,
        "encoding": {"cached": encoder.hits, "encoded": encoder.misses, "seconds": round(build_seconds, 2)},
        "runs": runs,
        "notes": sorted({note for run in runs for note in run["notes"]}),
    }


def evaluate_qa(
    settings: Settings,
    path: Path,
    modes: list[RecallMode],
    *,
    collection: str | None = None,
    limit: int | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    pipeline: RagPipeline | None = None,
) -> dict[str, Any]:
    items = load_qa(path)[:limit]
    pipeline = pipeline if pipeline is not None else RagPipeline(settings)
    pipeline.warm_up()
    kb = pipeline.knowledge_base(collection)
    answers_path = (out_dir if out_dir is not None else settings.data_dir / "eval") / "answers.jsonl"
    with open_answers(answers_path) as answers:
        runs = [run_qa(pipeline, kb, items, mode, answers, progress=progress) for mode in modes]
    return {
        "kind": "qa",
        "file": str(path),
        "questions": len(items),
        "collection": kb.name,
        "embedding_model": pipeline.embedder.model_name,
        "answers": str(answers_path),
        "runs": runs,
    }


def evaluate_conversations(
    settings: Settings,
    path: Path,
    modes: list[RecallMode],
    *,
    collection: str | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    pipeline: RagPipeline | None = None,
) -> dict[str, Any]:
    items = load_dialogues(path)
    pipeline = pipeline if pipeline is not None else RagPipeline(settings)
    pipeline.warm_up()
    kb = pipeline.knowledge_base(collection)
    answers_path = (out_dir if out_dir is not None else settings.data_dir / "eval") / "dialogues.jsonl"
    with open_answers(answers_path) as answers:
        runs = [
            run_dialogues(pipeline, items, collection=kb.name, mode=mode, answers=answers, progress=progress)
            for mode in modes
        ]
    return {
        "kind": "dialogues",
        "file": str(path),
        "dialogues": len(items),
        "collection": kb.name,
        "embedding_model": pipeline.embedder.model_name,
        "answers": str(answers_path),
        "runs": runs,
    }
