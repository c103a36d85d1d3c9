"""The `rag` command. Thin: settings in, library calls, a table or --json out.

Exit codes: 0 ok, 1 error, 2 bad usage or settings, 3 some files failed to ingest.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast, get_args

import typer
from rich.console import Console
from rich.table import Table

from rag.backends import gpu_model_on_cpu
from rag.config import RecallMode, Settings, load_settings
from rag.errors import ConfigError, InvalidHistory, ModelLoadError, RagError

if TYPE_CHECKING:
    from rag.embedding import Embedder
    from rag.pipeline import RagPipeline, SearchOptions
    from rag.questionlog.report import ExportFormat
    from rag.questionlog.store import QuestionLog, Rating
    from rag.types import Answer, Turn

app = typer.Typer(
    name="rag",
    help="Knowledge-base Q&A: ingest documents, search them, ask questions with citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
docs_app = typer.Typer(help="List or delete the documents of a knowledge base.", invoke_without_command=True)
app.add_typer(docs_app, name="docs")
collections_app = typer.Typer(
    help="List knowledge bases, or show/set one's default rerank instruction.", invoke_without_command=True
)
app.add_typer(collections_app, name="collections")
log_app = typer.Typer(help="The question log: statistics, and rated answers exported for review or evaluation.")
app.add_typer(log_app, name="log")

# soft_wrap: a reason or a path is one line even when piped (no wrapping at 80 columns).
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
CollectionOption = Annotated[
    str | None, typer.Option("--collection", "-c", help="Knowledge base (default: the configured one).")
]


class _State:
    config: Path | None = None


_state = _State()


@app.callback()
def _main(
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML settings profile (also RAG_CONFIG).", show_default=False)
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    _state.config = config
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _settings() -> Settings:
    return load_settings(_state.config)


@contextmanager
def _errors() -> Iterator[None]:
    """One place that turns our errors into a one-line message and an exit code."""
    try:
        yield
    except (ConfigError, ModelLoadError, InvalidHistory) as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except RagError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None


def _emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


# -- ingest -------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (walked recursively).")],
    collection: CollectionOption = None,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove documents under these paths whose files are gone.")
    ] = False,
    password: Annotated[
        str | None, typer.Option("--password", help="Password for encrypted PDFs.", envvar="RAG_PDF_PASSWORD")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Parse, chunk and embed on the Ray cluster at ADDRESS (host:port, or 'auto'); needs "
            "chroma.url and the 'distributed' extra.",
        ),
    ] = None,
    ray_workers: Annotated[
        int | None, typer.Option("--ray-workers", min=1, help="Ray workers to use (default: one per CPU).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ingest files and folders (every supported file type; others found in folders are listed as ignored).
    Unchanged files are skipped."""
    from ingest import Ingestor
    from ingest.pipeline import FileOutcome, WorkExecutor

    with _errors():
        settings = _settings()
        executor: WorkExecutor | None = None
        if ray_address is not None:
            from ingest.distributed import RayExecutor

            executor = RayExecutor(ray_address, workers=ray_workers)
        ingestor = Ingestor(settings)
        ingestor.warm_up()
        _warn_if_slow(ingestor.embedder)
        progress = _progress(enabled=not as_json and err.is_terminal)
        with progress:
            task = progress.add_task("ingesting", total=None)

            def on_plan(total: int) -> None:
                progress.update(task, total=total)

            def on_file(outcome: FileOutcome) -> None:
                progress.update(task, advance=1, description=Path(outcome.path).name[:40])
                if outcome.status == "failed" and not as_json:
                    progress.console.print(f"[red]failed[/] {outcome.path}: {outcome.reason}", highlight=False)

            def on_page(path: Path, done: int, total: int) -> None:
                progress.update(task, description=f"{path.name[:28]} OCR {done}/{total}")

            report = ingestor.run(
                paths,
                collection=collection,
                prune=prune,
                pdf_password=password,
                on_plan=on_plan,
                on_file=on_file,
                on_page=on_page,
                executor=executor,
            )
    if as_json:
        _emit_json(report.to_dict())
    else:
        files = report.to_dict()["files"]
        if report.recovered:
            out.print(f"repaired {len(report.recovered)} document(s) left half-written by an interrupted run")
        out.print(
            f"[bold]{report.collection}[/]: {files['ok']} ingested "
            f"({files['added']} new, {files['replaced']} replaced), {files['unchanged']} unchanged, "
            f"{files['failed']} failed, {files['pruned']} pruned"
            + (f", {files['ignored']} ignored (unsupported type)" if files["ignored"] else "")
            + f"; {report.pages} pages, {report.chunks} chunks in {report.seconds:.1f}s"
            f" (embedding {report.embed_seconds:.1f}s)",
            highlight=False,
        )
    raise typer.Exit(report.exit_code)


def _progress(*, enabled: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not enabled,
        transient=True,
    )


def _warn_if_slow(embedder: Embedder) -> None:
    """Say plainly when a GPU-sized model is about to run on the CPU."""
    slow = gpu_model_on_cpu(embedder)
    if slow:
        err.print(f"[yellow]note:[/] {slow}. A large document set will take hours.", highlight=False)


# -- docs ---------------------------------------------------------------------------------
@docs_app.callback()
def docs(ctx: typer.Context, collection: CollectionOption = None, as_json: JsonOption = False) -> None:
    """List the documents of a knowledge base with their chunk counts."""
    if ctx.invoked_subcommand is not None:
        return
    from rag.store import VectorStore

    with _errors():
        settings = _settings()
        kb = VectorStore(settings).open(collection if collection is not None else settings.collection)
        records = kb.documents()
    if as_json:
        _emit_json([{**r.__dict__, "visible": r.visible} for r in records])
        return
    table = Table(title=f"{kb.name}: {len(records)} documents, {sum(r.chunks for r in records)} chunks")
    for column in ("doc id", "source", "type", "pages", "chunks", "ingested"):
        table.add_column(column)
    for r in records:
        state = "" if not r.pending_version else " (interrupted)"
        table.add_row(r.doc_id, r.source + state, r.file_type, str(r.pages or ""), str(r.chunks), r.ingested_at)
    out.print(table)


@docs_app.command("delete")
def docs_delete(
    doc: Annotated[str, typer.Argument(help="Document id or source path.")],
    collection: CollectionOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove one document and its chunks."""
    from ingest.manifest import delete_document
    from rag.lexical.index import LexicalIndexes
    from rag.store import VectorStore

    with _errors():
        settings = _settings()
        kb = VectorStore(settings).open(collection if collection is not None else settings.collection)
        wanted = str(Path(doc).expanduser().resolve())  # a path, also of a file already deleted
        matches = [r for r in kb.documents() if doc in (r.doc_id, r.source) or r.source == wanted]
        if not matches:
            raise ConfigError(f"no document {doc!r} in {kb.name!r}")
        lexical = LexicalIndexes(settings).get(kb)
        for record in matches:
            delete_document(kb, record, lexical)
    if as_json:
        _emit_json({"deleted": [r.doc_id for r in matches]})
    else:
        for r in matches:
            out.print(f"deleted {r.doc_id} {r.source} ({r.chunks} chunks)", highlight=False)


@collections_app.callback()
def collections(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the knowledge bases in the store."""
    if ctx.invoked_subcommand is not None:
        return
    from rag.store import VectorStore

    with _errors():
        store = VectorStore(_settings())
        rows: list[dict[str, Any]] = []
        for name in store.list_knowledge_bases():
            row = store.open(name).summary()
            row["model"] = row.pop("embedding_model")  # the CLI's --json has said "model" since it began
            rows.append(row)
    if as_json:
        _emit_json(rows)
        return
    table = Table(title=f"knowledge bases in {store.location}")
    for column in ("name", "documents", "chunks", "embedding model", "rerank instruction"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], str(row["documents"]), str(row["chunks"]), row["model"], row["instruction"] or "")
    out.print(table)


@collections_app.command("instruction")
def collections_instruction(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    text: Annotated[str | None, typer.Argument(help="The new default rerank instruction.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Go back to the global default.")] = False,
) -> None:
    """Show or set a knowledge base's default rerank instruction (a request's own one still wins)."""
    from rag.store import VectorStore

    with _errors():
        settings = _settings()
        kb = VectorStore(settings).open(name)
        if clear or text is not None:
            kb.set_instruction(None if clear else text)
            kb = VectorStore(settings).open(name)
    current = kb.instruction
    out.print(current if current is not None else f"(global default) {settings.rerank.instruction}", highlight=False)


# -- query side ---------------------------------------------------------------------------
TopKOption = Annotated[int | None, typer.Option("--top-k", help="Chunks recalled (default 100).")]
TopNOption = Annotated[int | None, typer.Option("--top-n", help="Chunks kept after reranking (default 5).")]
InstructionOption = Annotated[
    str | None, typer.Option("--instruction", help="Reranker task instruction (default: the collection's).")
]
FileOption = Annotated[list[str] | None, typer.Option("--file", help="Only these file names (repeatable).")]
RECALL_MODES: tuple[str, ...] = get_args(RecallMode)
RecallModeOption = Annotated[
    str | None, typer.Option("--mode", help=f"Recall: {', '.join(RECALL_MODES)} (default: recall.mode).")
]


def _query_options(
    top_k: int | None, top_n: int | None, instruction: str | None, file: list[str] | None, mode: str | None
) -> SearchOptions:
    from rag.pipeline import SearchOptions

    return SearchOptions(
        top_k=top_k,
        top_n=top_n,
        instruction=instruction,
        filters={"file": file} if file else None,
        mode=_modes([mode])[0] if mode else None,
    )


def _modes(chosen: list[str]) -> list[RecallMode]:
    for name in chosen:
        if name not in RECALL_MODES:
            raise ConfigError(f"unknown recall mode {name!r}; use {', '.join(RECALL_MODES)}")
    return [cast(RecallMode, name) for name in dict.fromkeys(chosen)]


def _pipeline(*, answers: bool, settings: Settings | None = None) -> RagPipeline:
    from rag.pipeline import RagPipeline

    pipeline = RagPipeline(settings if settings is not None else _settings())
    pipeline.warm_up(generator=answers)
    return pipeline


def _report_adaptations(notes: tuple[str, ...], degraded: tuple[str, ...]) -> None:
    for line in (*notes, *(f"degraded: {stage}" for stage in degraded)):
        err.print(f"[yellow]{line}[/]", highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionOption = None,
    top_k: TopKOption = None,
    top_n: TopNOption = None,
    instruction: InstructionOption = None,
    file: FileOption = None,
    mode: RecallModeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ranked chunks with their recall rank and rerank score (no answer generated)."""
    with _errors():
        result = _pipeline(answers=False).search(
            query, collection=collection, options=_query_options(top_k, top_n, instruction, file, mode)
        )
    if as_json:
        _emit_json(result.to_dict())
        return
    _report_adaptations(result.notes, result.degraded)
    table = Table(title=f"{query}  ({_timings(result.timings)})")
    for column in ("#", "recall", "rerank", "file", "page", "heading", "text"):
        table.add_column(column)
    for i, passage in enumerate(result.passages, start=1):
        table.add_row(
            str(i),
            f"{passage.recall_rank} ({passage.recall_score:.2f})",
            "" if passage.rerank_score is None else f"{passage.rerank_score:.3f}",
            passage.file_name,
            str(passage.page or ""),
            passage.heading[-40:],
            " ".join(passage.text.split())[:120],
        )
    out.print(table)


HistoryOption = Annotated[
    Path | None,
    typer.Option(
        "--history",
        help='The conversation before the question: a JSON list of {"role": "user"|"assistant", "content"}.',
        exists=True,
        dir_okay=False,
    ),
]


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    collection: CollectionOption = None,
    top_k: TopKOption = None,
    top_n: TopNOption = None,
    instruction: InstructionOption = None,
    file: FileOption = None,
    mode: RecallModeOption = None,
    history: HistoryOption = None,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it is written.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Answer a question from the knowledge base, citing file and page.

    With --history, a follow-up is searched made standalone (the answer's "query").
    With --stream --json the output is JSON lines: {"delta": text}... then {"answer": {...}}.
    """
    from rag.questionlog.store import Asked

    with _errors():
        settings = _settings()
        turns = _read_history(history, settings) if history is not None else []
        pipeline = _pipeline(answers=True, settings=settings)
        options = _query_options(top_k, top_n, instruction, file, mode)
        with _question_log(settings) as question_log:
            events = pipeline.ask_stream(question, collection=collection, options=options, history=turns)
            asked = Asked.of(settings, "cli.ask", CLI_KEY_NAME, collection, options.mode)
            answer = _print_answer_stream(question_log.recorded(events, asked), stream=stream, as_json=as_json)
    if not as_json:
        _print_sources(answer, streamed=stream)


@app.command()
def chat(
    collection: CollectionOption = None,
    instruction: InstructionOption = None,
    file: FileOption = None,
    mode: RecallModeOption = None,
) -> None:
    """A conversation: ask, then ask follow-ups ("and if it fails everywhere?") that use what was said.

    One question per line; "/new" starts a new conversation, "/exit" (or end of input) leaves.
    """
    from rag.questionlog.store import Asked
    from rag.types import Turn

    with _errors(), _question_log(settings := _settings()) as question_log:
        pipeline = _pipeline(answers=True, settings=settings)
        options = _query_options(None, None, instruction, file, mode)
        asked = Asked.of(settings, "cli.chat", CLI_KEY_NAME, collection, options.mode)
        history: list[Turn] = []
        while True:
            try:
                question = input("you> ").strip()
            except EOFError:
                break
            if question in ("/exit", "/quit"):
                break
            if question == "/new":
                history = []
                out.print("(new conversation)")
                continue
            if not question:
                continue
            events = pipeline.ask_stream(question, collection=collection, options=options, history=history)
            answer = _print_answer_stream(question_log.recorded(events, asked), stream=True, as_json=False)
            _print_sources(answer, streamed=True)
            if answer.query != answer.question:
                err.print(f"[dim]searched: {' '.join(answer.query.split())}[/]", highlight=False)
            history += [Turn("user", question), Turn("assistant", answer.text)]


# The name the question log gives questions asked on the command line (API keys give theirs).
CLI_KEY_NAME = "cli"


@contextmanager
def _question_log(settings: Settings) -> Iterator[QuestionLog]:
    from rag.questionlog.store import QuestionLog

    question_log = QuestionLog(settings)
    try:
        yield question_log
    finally:
        question_log.close()


def _read_history(path: Path, settings: Settings) -> list[Turn]:
    from rag.conversation import labelled, parse_history

    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--history {path}: not a JSON file ({exc})") from None
    if not isinstance(items, list):
        raise ConfigError(f'--history {path}: expected a JSON list of {{"role", "content"}}')
    return parse_history(labelled(items), settings.conversation)


def _print_answer_stream(events: Iterator[str | Answer], *, stream: bool, as_json: bool) -> Answer:
    """Print an answer's text as it comes (--stream) or whole; JSON when asked. Returns the Answer."""
    from rag.types import Answer

    answer: Answer | None = None
    for event in events:
        if isinstance(event, Answer):
            answer = event
        elif stream and as_json:
            print(json.dumps({"delta": event}, ensure_ascii=False), flush=True)
        elif stream:
            sys.stdout.write(event)
            sys.stdout.flush()
    assert answer is not None
    if as_json:
        if stream:
            print(json.dumps({"answer": answer.to_dict()}, ensure_ascii=False), flush=True)
        else:
            _emit_json(answer.to_dict())
    return answer


def _print_sources(answer: Answer, *, streamed: bool) -> None:
    out.print("\n" if streamed else answer.text, highlight=False, markup=False)
    _report_adaptations(answer.notes, answer.degraded)
    for citation in answer.citations:
        passage = citation.passage
        where = passage.file_name + (f" p. {passage.page}" if passage.page is not None else "")
        score = passage.rerank_score if passage.rerank_score is not None else passage.recall_score
        mark = "*" if citation.cited else " "
        heading = f" - {passage.heading[-60:]}" if passage.heading else ""
        out.print(f"{mark}[{citation.n}] {where}{heading}  (score {score:.3f})", highlight=False, markup=False)
    err.print(f"[dim]{answer.generator}: {_timings(answer.timings)}[/]", highlight=False)


@app.command()
def rerank(
    query: Annotated[str, typer.Option("--query", "-q", help="The query.")],
    doc: Annotated[list[str] | None, typer.Option("--doc", "-d", help="A candidate (repeatable).")] = None,
    docs_file: Annotated[
        Path | None, typer.Option("--docs-file", help="Candidates, one per line ('-': standard input).")
    ] = None,
    instruction: Annotated[str | None, typer.Option("--instruction", help="Task instruction.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score candidate passages against a query with the configured reranker, best first."""
    from rag.rerank import build_reranker

    candidates = list(doc or [])
    if docs_file is not None:
        text = sys.stdin.read() if str(docs_file) == "-" else docs_file.read_text(encoding="utf-8")
        candidates += [line.strip() for line in text.splitlines() if line.strip()]
    if not candidates:
        err.print("[red]error:[/] give candidates with --doc or --docs-file", highlight=False)
        raise typer.Exit(2)
    with _errors():
        settings = _settings()
        reranker = build_reranker(settings.rerank)
        reranker.warm_up()
        task = instruction if instruction is not None else settings.rerank.instruction
        scores = reranker.score(query, candidates, instruction=task)
    ranked = sorted(range(len(candidates)), key=lambda i: -scores[i])
    rows: list[dict[str, Any]] = [{"index": i, "score": scores[i], "document": candidates[i]} for i in ranked]
    if as_json:
        _emit_json({"query": query, "instruction": task, "reranker": reranker.name, "results": rows})
        return
    table = Table(title=f"{query}  [{reranker.name}: {reranker.model_name}]")
    for column in ("rank", "score", "#", "document"):
        table.add_column(column)
    for rank, row in enumerate(rows, start=1):
        table.add_row(str(rank), f"{row['score']:.4f}", str(row["index"]), row["document"][:140])
    out.print(table)


@app.command()
def doctor(collection: CollectionOption = None, as_json: JsonOption = False) -> None:
    """Check the configured models as they are served or loaded: the reranker reads the Qwen3 template
    exactly once, tells relevant from irrelevant (English, Chinese), queries carry the embedder's
    prompt once, the embedder's dimension is the collection's. Exit 1 when a check fails (a warning
    does not: random or weak weights lose the relevance canaries)."""
    from rag.selfcheck import run_checks

    with _errors():
        checks = run_checks(_pipeline(answers=False), collection)
    failed = any(check.failed for check in checks)
    if as_json:
        _emit_json({"ok": not failed, "checks": [check.to_dict() for check in checks]})
    else:
        style = {"ok": "green", "warning": "yellow", "failed": "red"}
        for check in checks:
            out.print(f"[{style[check.status]}]{check.status:<8}[/] {check.name}: {check.message}", highlight=False)
    raise typer.Exit(1 if failed else 0)


def _with_two_malloc_arenas() -> None:
    """Run this command again, once, with MALLOC_ARENA_MAX=2 (glibc reads it only at start-up),
    unless the variable is already set (set it yourself to choose another number).

    glibc gives each thread that meets contention its own malloc arena, up to 8 per core, and the
    server's thread pool keeps them: under a long load the server's memory kept rising with glibc's
    default and stayed flat with 2 arenas (docs/reliability.md; `make bench-memory`)."""
    import os

    if sys.platform == "linux" and "MALLOC_ARENA_MAX" not in os.environ:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "MALLOC_ARENA_MAX": "2"})


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default: api.host, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default: api.port, 8000).")] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (more than 1 needs chroma.url: a Chroma server).")
    ] = 1,
) -> None:
    """Run the HTTP API (OpenAPI at /docs, the web page at /) with uvicorn."""
    import os

    _with_two_malloc_arenas()
    import uvicorn

    from rag.api import create_app
    from rag.api.auth import is_loopback

    with _errors():
        settings = _settings()
        bind_host = host if host is not None else settings.api.host
        if not settings.api.keys and not is_loopback(bind_host):
            raise ConfigError(
                f"refusing to serve on {bind_host} without API keys: anyone who can reach it could read and "
                "change every collection. Configure api.keys (RAG_API__KEYS) or bind to 127.0.0.1."
            )
        if workers > 1 and not settings.chroma.url:
            raise ConfigError("several workers need a Chroma server (chroma.url): embedded Chroma is not process-safe")
        bind_port = port if port is not None else settings.api.port
        application = create_app(settings) if workers == 1 else None
    if application is not None:
        uvicorn.run(application, host=bind_host, port=bind_port, log_level="info")
        return
    if _state.config is not None:  # the workers are new processes: they read the profile from the environment
        os.environ["RAG_CONFIG"] = str(_state.config.resolve())
    uvicorn.run(
        "rag.api.app:app_from_environment",
        factory=True,
        workers=workers,
        host=bind_host,
        port=bind_port,
        log_level="info",
    )


ModeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mode", help=f"Recall mode(s) to compare: {', '.join(RECALL_MODES)} (repeat; default: recall.mode)."
    ),
]


@app.command(name="eval")
def evaluate(
    beir: Annotated[
        Path | None, typer.Option("--beir", help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.")
    ] = None,
    qa: Annotated[Path | None, typer.Option("--qa", help="Questions with gold file + pages (JSONL).")] = None,
    dialogues: Annotated[
        Path | None,
        typer.Option("--dialogues", help="Conversations whose last turn has a gold file + pages (JSONL)."),
    ] = None,
    collection: CollectionOption = None,
    mode: ModeOption = None,
    split: Annotated[str, typer.Option("--split", help="BEIR qrels split.")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N queries.")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write report.md, report.json, recall-curve.png (+ answers) here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure retrieval on your data: nDCG/MRR/recall (BEIR), gold-page hits (--qa) before and after
    reranking, or follow-ups' gold pages cited with their conversation and without (--dialogues)."""
    with _errors():
        try:
            import diskcache  # noqa: F401
            import matplotlib  # noqa: F401
            import pytrec_eval  # noqa: F401
        except ImportError as exc:
            raise ConfigError(
                f"rag eval needs the eval extra ({exc.name} is missing): pip install 'rag-kb[eval]'"
            ) from None
        from rag.evaluate.run import evaluate_beir, evaluate_conversations, evaluate_qa

        if sum(given is not None for given in (beir, qa, dialogues)) != 1:
            raise ConfigError("give exactly one of --beir DIR, --qa FILE or --dialogues FILE")
        settings = _settings()
        modes = _modes(mode or [settings.recall.mode])
        command = " ".join(["rag", *sys.argv[1:]])
        progress = not as_json and sys.stderr.isatty()
        if beir is not None:
            report = evaluate_beir(
                settings, beir, modes, collection=collection, split=split, limit=limit, progress=progress
            )
        elif qa is not None:
            report = evaluate_qa(
                settings, qa, modes, collection=collection, limit=limit, out_dir=out_dir, progress=progress
            )
        else:
            assert dialogues is not None
            report = evaluate_conversations(
                settings, dialogues, modes, collection=collection, out_dir=out_dir, progress=progress
            )
        if out_dir is not None:
            from rag.evaluate.report import write_report

            report["report"] = str(write_report(report, out_dir, command=command))
        if as_json:
            _emit_json(report)
            return
        from rag.evaluate.report import tables

        for table in tables(report):
            out.print(table)
        for line in report.get("notes", []):
            err.print(f"[yellow]{line}[/]", highlight=False)
        if report.get("answers"):
            out.print(f"answers: {report['answers']}")
        if report.get("report"):
            out.print(f"report: {report['report']}")


# -- the question log -----------------------------------------------------------------------
DaysOption = Annotated[int, typer.Option("--days", min=1, help="The last N days (UTC).")]


@log_app.command("stats")
def log_stats(
    days: DaysOption = 30,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="One collection (default: all).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Questions per day, refusal, degraded and down-vote rates, the most refused and down-voted questions."""
    from rag.questionlog.report import stats

    with _errors(), _question_log(_settings()) as question_log:
        report = stats(question_log, days=days, collection=collection)
    if as_json:
        _emit_json(report)
        return
    out.print(
        f"{report['questions']} questions in {days} days since {report['since']} ({question_log.where}): "
        f"refused {_rate(report['refusal_rate'])}, degraded {_rate(report['degraded_rate'])}, "
        f"{report['rated']} rated, down-voted {_rate(report['down_vote_rate'])}",
        highlight=False,
    )
    table = Table("day", "questions", "refused", "degraded", "up", "down")
    for day in report["per_day"]:
        table.add_row(*(str(day[k]) for k in ("day", "questions", "refused", "degraded", "up", "down")))
    out.print(table)
    for title, key in (("Most refused", "top_refused"), ("Most down-voted", "top_down_voted")):
        if report[key]:
            top = Table("times", "question", title=title)
            for row in report[key]:
                top.add_row(str(row["count"]), row["question"])
            out.print(top)


def _rate(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


@log_app.command("export")
def log_export(
    rating: Annotated[str, typer.Option("--rating", help="up or down: which rated answers.")],
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="qa: a question set for rag eval --qa (gold from the expected file/page, else the cited "
            "passage); review: every detail, for a person. Default: qa for up, review for down.",
        ),
    ] = None,
    days: Annotated[int | None, typer.Option("--days", min=1, help="Only the last N days.")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write JSONL here (default: stdout).")] = None,
) -> None:
    """Rated answers as JSON lines: a question set to evaluate with, or a list to review."""
    from rag.questionlog.report import export

    with _errors():
        if rating not in ("up", "down"):
            raise ConfigError(f"--rating: up or down, not {rating!r}")
        chosen = output_format or ("qa" if rating == "up" else "review")
        if chosen not in ("qa", "review"):
            raise ConfigError(f"--format: qa or review, not {chosen!r}")
        with _question_log(_settings()) as question_log:
            lines, left_out = export(
                question_log, rating=cast("Rating", rating), output=cast("ExportFormat", chosen), days=days
            )
        text = "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
        if output is None:
            sys.stdout.write(text)
        else:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"--out {output}: {exc.strerror or exc}") from None
    where = "" if output is None else f" to {output}"
    skipped = f"; {left_out} left out (no gold file: rate them with expected_file)" if left_out else ""
    err.print(f"{len(lines)} {rating}-rated answers{where}{skipped}", highlight=False)


def _timings(timings: dict[str, float]) -> str:
    return ", ".join(f"{stage} {seconds * 1000:.0f} ms" for stage, seconds in timings.items())


def main(argv: list[str] | None = None) -> None:
    app(args=argv)
