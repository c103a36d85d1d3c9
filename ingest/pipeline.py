"""load -> chunk -> embed -> upsert -> manifest, one file at a time, with a report per file.

Write protocol per document (each step one Chroma write; a kill between any two is repaired by
`manifest.recover` at the start of the next run, and queries never see a half-written document
because they only return chunks of the version the manifest record names):

  1. record.pending_version = new          (old version, if any, stays visible)
  2. upsert the new version's chunks       (ids carry the version: no collision with the old)
  3. record.version = new (pending = new)  (the switch: one atomic record write)
  4. delete the document's other versions
  5. record.pending_version = ""
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from filelock import FileLock, Timeout

from ingest._parse import PageProgress, ParseLimits, parse_all
from ingest.chunking import CHUNKER_VERSION, Chunker, heading_context
from ingest.loaders import LoadOptions, format_of
from ingest.manifest import content_version, delete_document, document_id, file_sha256, recover
from rag.config import Settings
from rag.embedding import Embedder, build_embedder
from rag.errors import LoadError, RagError, StoreError
from rag.lexical.index import LexicalIndex, LexicalIndexes
from rag.store import KnowledgeBase, VectorStore
from rag.tables import plain_tables
from rag.types import DocumentRecord, LoadedDocument

log = logging.getLogger(__name__)

Status = Literal["added", "replaced", "unchanged", "failed", "pruned"]

EXIT_OK = 0
EXIT_SOME_FAILED = 3


@dataclass(frozen=True)
class FileOutcome:
    path: str
    status: Status
    reason: str = ""
    doc_id: str = ""
    chunks: int = 0
    pages: int = 0
    seconds: float = 0.0


@dataclass
class IngestReport:
    collection: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # files in walked folders of other types
    recovered: list[str] = field(default_factory=list)  # documents a killed run left, repaired
    seconds: float = 0.0
    embed_seconds: float = 0.0  # inside the embedding model
    store_seconds: float = 0.0

    def count(self, *statuses: Status) -> int:
        return sum(1 for o in self.outcomes if o.status in statuses)

    @property
    def pages(self) -> int:
        return sum(o.pages for o in self.outcomes if o.status in ("added", "replaced"))

    @property
    def chunks(self) -> int:
        return sum(o.chunks for o in self.outcomes if o.status in ("added", "replaced"))

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_FAILED if self.count("failed") else EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "files": {
                "ok": self.count("added", "replaced"),
                "added": self.count("added"),
                "replaced": self.count("replaced"),
                "unchanged": self.count("unchanged"),
                "failed": self.count("failed"),
                "pruned": self.count("pruned"),
                "ignored": len(self.ignored),
            },
            "pages": self.pages,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
            "store_seconds": round(self.store_seconds, 3),
            "recovered": self.recovered,
            "outcomes": [o.__dict__ for o in self.outcomes],
            "ignored": self.ignored,
        }


@dataclass(frozen=True)
class PlannedFile:
    """A file to (re)ingest: what the plan found out about it before any parsing."""

    path: Path
    doc_id: str
    sha256: str
    size: int
    version: str
    record: DocumentRecord | None


class WorkExecutor(Protocol):
    """Runs the per-file work of a run elsewhere (ingest.distributed: on Ray workers)."""

    def ingest(
        self,
        settings: Settings,
        collection: str,
        work: Sequence[PlannedFile],
        options: LoadOptions,
        report: IngestReport,
        finish: Callable[[FileOutcome], None],
    ) -> None: ...


def discover(paths: Iterable[Path | str]) -> tuple[list[Path], list[FileOutcome], list[str], list[Path]]:
    """Files to ingest (folders walked recursively, hidden entries skipped), missing paths as
    failures, files of unsupported types found in folders, and the roots for --prune."""
    files: list[Path] = []
    failed: list[FileOutcome] = []
    ignored: list[str] = []
    roots: list[Path] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            files.append(resolved)

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            roots.append(path.resolve())
            for folder, dirs, names in os.walk(path, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    if name.startswith("."):
                        continue
                    candidate = Path(folder) / name
                    if format_of(candidate) is None:
                        ignored.append(str(candidate.resolve()))
                    elif candidate.is_file():
                        add(candidate)
        elif path.is_file():
            roots.append(path.resolve())
            add(path)
        else:
            failed.append(FileOutcome(str(path), "failed", "no such file or directory"))
    return files, failed, ignored, roots


class Ingestor:
    """Ingests files into one knowledge base. Cheap to build; `warm_up()` loads the model."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        store: VectorStore | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder if embedder is not None else build_embedder(settings.embedding)
        self.store = store if store is not None else VectorStore(settings)
        self._chunker: Chunker | None = None

    def warm_up(self) -> None:
        self.embedder.warm_up()

    @property
    def chunker(self) -> Chunker:
        if self._chunker is None:
            self.warm_up()
            max_tokens = min(self.settings.chunking.max_tokens, self.embedder.max_tokens)
            if max_tokens < self.settings.chunking.max_tokens:
                log.warning(
                    "chunking.max_tokens %d is over what %s reads (%d); using %d",
                    self.settings.chunking.max_tokens,
                    self.embedder.model_name,
                    self.embedder.max_tokens,
                    max_tokens,
                )
            self._chunker = Chunker(
                self.embedder.count_tokens,
                max_tokens=max_tokens,
                overlap_tokens=min(self.settings.chunking.overlap_tokens, max_tokens // 2),
            )
        return self._chunker

    def open_knowledge_base(self, collection: str) -> KnowledgeBase:
        self.warm_up()
        return self.store.open(
            collection, embedding_model=self.embedder.model_name, dimension=self.embedder.dimension, create=True
        )

    def _chunking_key(self) -> str:
        chunker = self.chunker
        return f"{CHUNKER_VERSION}|{self.embedder.model_name}|{chunker.max_tokens}|{chunker.overlap_tokens}"

    def run(
        self,
        paths: Sequence[Path | str],
        *,
        collection: str | None = None,
        prune: bool = False,
        pdf_password: str | None = None,
        on_plan: Callable[[int], None] | None = None,
        on_file: Callable[[FileOutcome], None] | None = None,
        on_page: PageProgress | None = None,
        executor: WorkExecutor | None = None,
    ) -> IngestReport:
        """Ingest files and folders; `executor`: where the per-file work runs (default: here)."""
        started = time.perf_counter()
        name = collection if collection is not None else self.settings.collection
        report = IngestReport(collection=name)
        files, missing, report.ignored, roots = discover(paths)
        if on_plan:
            on_plan(len(files) + len(missing))
        kb = self.open_knowledge_base(name)
        password = pdf_password
        if password is None and self.settings.ingest.pdf_password is not None:
            password = self.settings.ingest.pdf_password.get_secret_value()

        def finish(outcome: FileOutcome) -> None:
            report.outcomes.append(outcome)
            if on_file:
                on_file(outcome)

        with self._lock(name):
            lexical = LexicalIndexes(self.settings).get(kb)
            report.recovered = recover(kb, lexical=lexical)
            for outcome in missing:
                finish(outcome)
            work = self._plan(kb, files, finish)
            options = LoadOptions(
                pdf_password=password, ocr=self.settings.ingest.ocr, ocr_max_pages=self.settings.ingest.ocr_max_pages
            )
            if executor is None:
                self.ingest_work(kb, lexical, work, options, report, finish, on_page=on_page)
            else:
                executor.ingest(self.settings, kb.name, work, options, report, finish)
            if prune:
                # Every file found counts as present, also one that failed this time: prune only what is gone.
                for record in self._prunable(kb, roots, {document_id(path) for path in files}):
                    delete_document(kb, record, lexical)
                    finish(FileOutcome(record.source, "pruned", doc_id=record.doc_id))
                self._prune_lexical(lexical)
        report.seconds = time.perf_counter() - started
        return report

    def ingest_work(
        self,
        kb: KnowledgeBase,
        lexical: LexicalIndex,
        work: Sequence[PlannedFile],
        options: LoadOptions,
        report: IngestReport,
        finish: Callable[[FileOutcome], None],
        *,
        on_page: PageProgress | None = None,
    ) -> None:
        """Parse (in the fenced worker, one file ahead), chunk, embed and commit planned files."""
        planned = {item.path: item for item in work}
        for path, parsed in parse_all(
            list(planned), options=options, workers=self._parse_workers(work), limits=self._limits(), on_page=on_page
        ):
            finish(self._ingest_one(kb, lexical, planned[path], parsed, report))

    def _parse_workers(self, work: Sequence[PlannedFile]) -> int:
        """A worker overlaps parsing with embedding and fences off the parser; for a lone text-like
        file (its size already capped, its parse linear) it would only add its start-up."""
        fenced = any(fmt.compressed for item in work if (fmt := format_of(item.path)) is not None)
        return self.settings.ingest.parse_workers if len(work) > 1 or fenced else 0

    def _disk_too_full(self, payload_bytes: int) -> str:
        """The reason not to write `payload_bytes` into embedded Chroma, or "" to go ahead. Chroma
        writes a log, then segments and an index: ~3x the payload, checked generously."""
        if self.settings.chroma.url:
            return ""  # a Chroma server's disk is not ours to see
        data_dir = self.settings.data_dir
        free = shutil.disk_usage(data_dir if data_dir.exists() else data_dir.parent).free
        needed = 3 * payload_bytes + self.settings.ingest.min_free_disk_mb * 2**20
        if free >= needed:
            return ""
        return (
            f"not enough disk space under {data_dir}: {free / 2**20:.0f} MB free, {needed / 2**20:.0f} MB needed "
            "(ingest.min_free_disk_mb is kept free); nothing was written"
        )

    def _limits(self) -> ParseLimits:
        return ParseLimits(self.settings.ingest.parse_timeout_s, self.settings.ingest.parse_memory_mb)

    def _plan(self, kb: KnowledgeBase, files: list[Path], finish: Callable[[FileOutcome], None]) -> list[PlannedFile]:
        """Hash every file; unchanged ones are reported at once, the rest returned as work."""
        key = self._chunking_key()
        work: list[PlannedFile] = []
        limit = self.settings.ingest.max_file_mb * 2**20
        for path in files:
            doc_id = document_id(path)
            try:
                size = path.stat().st_size
                if size > limit:
                    raise LoadError(path, f"{size / 2**20:.1f} MB is over ingest.max_file_mb ({limit / 2**20:g} MB)")
                sha = file_sha256(path)
            except LoadError as exc:
                finish(FileOutcome(str(path), "failed", exc.reason, doc_id))
                continue
            except OSError as exc:
                finish(FileOutcome(str(path), "failed", f"cannot read: {exc.strerror or exc}", doc_id))
                continue
            item = PlannedFile(path, doc_id, sha, size, content_version(sha, chunking_key=key), kb.document(doc_id))
            if item.record is not None and item.record.version == item.version:
                finish(FileOutcome(str(path), "unchanged", doc_id=doc_id, chunks=item.record.chunks))
            else:
                work.append(item)
        # Smallest first: the model starts on the first file sooner while the parser runs ahead.
        work.sort(key=lambda item: item.size)
        return work

    def _ingest_one(
        self,
        kb: KnowledgeBase,
        lexical: LexicalIndex,
        item: PlannedFile,
        parsed: LoadedDocument | LoadError,
        report: IngestReport,
    ) -> FileOutcome:
        started = time.perf_counter()
        if isinstance(parsed, LoadError):
            return FileOutcome(str(item.path), "failed", parsed.reason, item.doc_id)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        chunks = self.chunker.chunk(parsed, doc_id=item.doc_id, version=item.version, ingested_at=now)
        t0 = time.perf_counter()
        vectors = self.embedder.embed_documents([heading_context(c.heading_path, plain_tables(c.text)) for c in chunks])
        t1 = time.perf_counter()
        report.embed_seconds += t1 - t0
        record = DocumentRecord(
            doc_id=item.doc_id,
            source=str(item.path),
            file_type=parsed.file_type,
            size=item.size,
            sha256=item.sha256,
            version=item.version,
            pending_version=item.version,
            chunks=len(chunks),
            pages=parsed.pages,
            title=parsed.title[:300],
            ingested_at=now,
        )
        previous = item.record
        short = self._disk_too_full(sum(len(c.text.encode()) for c in chunks) + vectors.nbytes)
        if short:
            return FileOutcome(str(item.path), "failed", short, item.doc_id)
        log.info("writing %d chunks of %s (version %s)", len(chunks), item.path, item.version)
        try:
            if previous is not None:
                kb.put_document(replace(previous, pending_version=item.version))
            else:
                kb.put_document(replace(record, version=""))
            kb.upsert_chunks(chunks, vectors)
            lexical.write_terms(item.doc_id, item.version, chunks)
            kb.put_document(record)
            kb.delete_chunks(item.doc_id, keep_version=item.version)
            kb.put_document(replace(record, pending_version=""))
            if previous is not None:
                lexical.drop_terms(item.doc_id, previous.version)
            log.info("committed %s", item.path)
        except (StoreError, RagError) as exc:
            return FileOutcome(str(item.path), "failed", f"store write failed: {exc}", item.doc_id)
        finally:
            report.store_seconds += time.perf_counter() - t1
        status: Status = "replaced" if previous is not None and previous.version else "added"
        return FileOutcome(
            str(item.path),
            status,
            doc_id=item.doc_id,
            chunks=len(chunks),
            pages=parsed.pages,
            seconds=time.perf_counter() - started,
        )

    @staticmethod
    def _prune_lexical(lexical: LexicalIndex) -> None:
        """Drop BM25 term files no committed version needs (left by deletions elsewhere); they are
        never searched, so a failure here costs disk, not answers."""
        try:
            lexical.prune_terms()
        except (RagError, OSError) as exc:
            log.warning("BM25 term files of %r not pruned: %s", lexical.kb.name, exc)

    @staticmethod
    def _prunable(kb: KnowledgeBase, roots: list[Path], seen: set[str]) -> list[DocumentRecord]:
        """Documents under the given roots that this run did not find (deleted or moved files)."""
        out = []
        for record in kb.documents():
            if record.doc_id in seen:
                continue
            source = Path(record.source)
            if any(source == root or root in source.parents for root in roots) or not source.exists():
                out.append(record)
        return out

    def _lock(self, collection: str) -> Any:
        """One writer per knowledge base in embedded mode. A Chroma server's writers may be on other
        machines, out of a file lock's reach: there one run per collection at a time is the rule
        (docs/deploy.md), a second run's recovery would repair the first's writes in flight."""
        if self.settings.chroma.url:
            return _NullLock()
        lock_dir = self.settings.data_dir / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        return _TimedLock(FileLock(str(lock_dir / f"{collection}.lock")), collection)


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class _TimedLock:
    def __init__(self, lock: FileLock, collection: str) -> None:
        self._lock = lock
        self._collection = collection

    def __enter__(self) -> None:
        try:
            self._lock.acquire(timeout=30)
        except Timeout:
            raise StoreError(
                f"another ingest into {self._collection!r} is running (lock {self._lock.lock_file})"
            ) from None

    def __exit__(self, *exc: object) -> None:
        self._lock.release()
