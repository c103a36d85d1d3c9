"""`make demo`: ingest the sample documents in data/ and show what the index can find.

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

COLLECTION_PREFIX = "demo"
QUESTIONS = [
    "What does VPN error 809 mean?",
    "How long must a password be?",
    "发现数据泄露后多久之内需要报告？",
    "What is the hotel limit in London?",
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

    kb = ingestor.store.open(collection)
    console.print("\nnearest passages (recall only; reranking and answers come with the query pipeline):")
    for question in QUESTIONS:
        hits = kb.query(ingestor.embedder.embed_query(question), 2)
        console.print(f"\n[bold]{question}[/]")
        for hit in hits:
            where = hit.file_name
            if hit.page:
                where += f" p.{hit.page}"
            heading = hit.heading
            snippet = " ".join(hit.text.split())[:160]
            console.print(
                f"  {hit.recall_rank}. [{hit.recall_score:.2f}] {where} — {heading}\n     {snippet}", highlight=False
            )
    console.print(
        f"\nindex: {ingestor.store.location}  (try: .venv/bin/rag --config configs/offline.yaml docs -c {collection})"
    )
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
