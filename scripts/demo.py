"""`make demo`: ingest the sample documents in data/, then answer sample questions end to end
(recall -> rerank -> answer), printing each answer, its citations and the stage timings.

Uses configs/default.yaml (the real Qwen3 models). Where they cannot be loaded here (no weights,
no hub), it says so in one line and runs on configs/offline.yaml instead.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from ingest import Ingestor  # noqa: E402
from rag.config import Settings, load_settings  # noqa: E402
from rag.errors import ModelLoadError, RagError  # noqa: E402
from rag.generate._language import is_chinese  # noqa: E402
from rag.pipeline import RagPipeline, SearchOptions  # noqa: E402
from rag.rerank import build_reranker  # noqa: E402
from rag.types import Answer, Turn  # noqa: E402

COLLECTION_PREFIX = "demo"
QUESTIONS = [
    "What does VPN error 809 mean?",
    "How long must a password be?",
    "发现数据泄露后多久之内需要报告？",
    "What is the hotel limit in London?",
    "How many weeks of parental leave do employees get?",  # not in data/: should be refused
]
# A conversation: the follow-up alone says nothing about uptime; it is searched with the question before it.
CONVERSATION = [
    "What is the uptime commitment for the Enterprise plan?",
    "And what does the customer get if you miss it?",
]
console = Console(soft_wrap=True)


def ready_ingestor() -> Ingestor:
    settings: Settings = load_settings(PROJECT / "configs" / "default.yaml")
    ingestor = Ingestor(settings)
    try:
        ingestor.warm_up()
        return ingestor
    except ModelLoadError as exc:
        console.print(f"[yellow]{exc}[/] -> running the demo on configs/offline.yaml", highlight=False)
    ingestor = Ingestor(load_settings(PROJECT / "configs" / "offline.yaml"))
    ingestor.warm_up()
    return ingestor


def show(answer: Answer) -> None:
    """The answer, its cited sources, the stage timings, and what was searched when it was a follow-up."""
    console.print(f"\n[bold]Q: {answer.question}[/]", highlight=False)
    console.print(f"A: {answer.text}", highlight=False, markup=False)
    for citation in answer.citations:
        if not citation.cited:
            continue
        passage = citation.passage
        where = passage.file_name + (f" p.{passage.page}" if passage.page else "")
        heading = f" - {passage.heading}" if passage.heading else ""
        console.print(f"   [{citation.n}] {where}{heading}", highlight=False, markup=False)
    timings = ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in answer.timings.items())
    console.print(f"   [dim]{answer.generator}: {timings}[/]", highlight=False)
    for line in (*answer.notes, *(f"degraded: {stage}" for stage in answer.degraded)):
        console.print(f"   [yellow]{line}[/]", highlight=False)
    if answer.query != answer.question:
        console.print(f"   [dim]searched: {' '.join(answer.query.split())}[/]", highlight=False)


def main() -> int:
    try:
        ingestor = ready_ingestor()
        console.print(f"embedding model: {ingestor.embedder.model_name} on {getattr(ingestor.embedder, 'device', '?')}")
        # One collection per model: vectors of two models never share one.
        model_slug = re.sub(r"[^A-Za-z0-9_-]+", "-", ingestor.embedder.model_name.rsplit("/", 1)[-1]).strip("-")
        collection = f"{COLLECTION_PREFIX}-{model_slug}"
        report = ingestor.run([PROJECT / "data"], collection=collection, prune=True)
    except RagError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1

    table = Table(title=f"ingested data/ into '{collection}' ({report.seconds:.1f}s)")
    for column in ("file", "status", "pages", "chunks", "reason"):
        table.add_column(column)
    for outcome in report.outcomes:
        table.add_row(
            Path(outcome.path).name, outcome.status, str(outcome.pages or ""), str(outcome.chunks), outcome.reason
        )
    console.print(table)

    try:
        pipeline = RagPipeline(ingestor.settings, embedder=ingestor.embedder, store=ingestor.store)
        pipeline.reranker.warm_up()
    except ModelLoadError as exc:
        console.print(f"[yellow]{exc}[/] -> answering in recall order", highlight=False)
        offline = load_settings(PROJECT / "configs" / "offline.yaml").rerank
        pipeline = RagPipeline(
            ingestor.settings, embedder=ingestor.embedder, reranker=build_reranker(offline), store=ingestor.store
        )
    try:
        for question in QUESTIONS:
            # The offline embedder (MiniLM) reads English only: Chinese questions also use BM25 (jieba).
            options = SearchOptions(mode="hybrid") if is_chinese(question) else None
            show(pipeline.ask(question, collection=collection, options=options))
        console.print("\n[bold]A conversation[/] (a follow-up is searched with the questions before it):")
        history: list[Turn] = []
        for question in CONVERSATION:
            answer = pipeline.ask(question, collection=collection, history=history)
            show(answer)
            history += [Turn("user", question), Turn("assistant", answer.text)]
    except RagError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 1
    console.print(
        f"\nindex: {ingestor.store.location}  (try: .venv/bin/rag --config configs/offline.yaml docs -c {collection})"
    )
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
