"""Ingestion on a Ray cluster (`rag ingest --ray ADDRESS`, extra `distributed`).

The driver (the `rag ingest` process) does what needs the whole picture, as a local run does:
it finds the files, repairs what killed runs left (`manifest.recover`, before any worker writes),
decides from the manifest what to skip, and prunes at the end. Ray actors, one per worker slot,
each with its own embedder (or client of a vLLM embedding server), parse, chunk, embed and commit
batches of files into the Chroma server under the same write protocol as a local run
(ingest.pipeline), so a worker killed mid-file leaves its document pending, never half-visible.

Ray restarts a killed actor and runs its batch again (`max_restarts`, `max_task_retries`): a
commit is idempotent (chunk ids carry the version), so a batch run twice ends as if run once. A
batch that still fails is reported as failed files, and the next run repairs and redoes them.

Every node reads the files by the same path (a shared file system), and the BM25 term files go to
each node's `data_dir`: on a shared `data_dir` the API workers read them, elsewhere they derive
the terms from Chroma on first use.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ingest.loaders import LoadOptions
from ingest.pipeline import FileOutcome, Ingestor, IngestReport, PlannedFile
from rag.config import Settings
from rag.errors import ConfigError
from rag.lexical.index import LexicalIndexes

log = logging.getLogger(__name__)

FILES_PER_TASK = 2  # small batches: a killed worker redoes little, the slots stay evenly busy
RETRIES = 2  # restarts of a killed worker, and runs of the batch it held


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("ingesting on Ray needs the 'distributed' extra: pip install 'rag-kb[distributed]'") from None
    return ray


class IngestWorker:
    """One Ray actor: an Ingestor writing into the collection the driver opened."""

    def __init__(self, settings: Settings, collection: str) -> None:
        self.ingestor = Ingestor(settings)
        self.kb = self.ingestor.store.open(collection)
        self.lexical = LexicalIndexes(settings).get(self.kb)

    def ingest(self, work: list[PlannedFile], options: LoadOptions) -> tuple[list[FileOutcome], float, float]:
        """The outcomes of a batch, with the seconds spent embedding and writing."""
        report = IngestReport(self.kb.name)
        self.ingestor.ingest_work(self.kb, self.lexical, work, options, report, report.outcomes.append)
        return report.outcomes, report.embed_seconds, report.store_seconds


class RayExecutor:
    """Runs a run's per-file work on the Ray cluster at `address` ("auto": the one this node is in)."""

    def __init__(self, address: str, *, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers

    def ingest(
        self,
        settings: Settings,
        collection: str,
        work: Sequence[PlannedFile],
        options: LoadOptions,
        report: IngestReport,
        finish: Callable[[FileOutcome], None],
    ) -> None:
        """Hand out batches to one actor per slot as each becomes free; report each batch's files."""
        if not work:
            return
        if not settings.chroma.url:
            raise ConfigError(
                "ingesting on Ray needs a Chroma server (chroma.url): workers on other machines "
                "cannot write an embedded store"
            )
        with _connected(self.address) as ray:
            slots = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            remote = ray.remote(num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES)(IngestWorker)
            idle = [remote.remote(settings, collection) for _ in range(min(slots, len(work)))]
            queue = list(_batches(work, FILES_PER_TASK))
            log.info("ingesting %d files in %d batches on %d Ray workers", len(work), len(queue), len(idle))
            pending: dict[Any, tuple[Any, list[PlannedFile]]] = {}
            while queue or pending:
                while idle and queue:
                    worker, batch = idle.pop(), queue.pop(0)
                    pending[worker.ingest.remote(batch, options)] = (worker, batch)
                [ready], _ = ray.wait(list(pending), num_returns=1)
                worker, batch = pending.pop(ready)
                idle.append(worker)
                try:
                    outcomes, embed_seconds, store_seconds = ray.get(ready)
                except Exception as exc:  # out of retries (RayActorError, RayTaskError): the batch failed
                    log.warning("a Ray batch of %d files failed: %s", len(batch), exc)
                    reason = f"Ray worker failed: {str(exc).splitlines()[0][:200]}"
                    outcomes, embed_seconds, store_seconds = [_failed(item, reason) for item in batch], 0.0, 0.0
                report.embed_seconds += embed_seconds
                report.store_seconds += store_seconds
                for outcome in outcomes:
                    finish(outcome)


@contextlib.contextmanager
def _connected(address: str) -> Iterator[Any]:
    """The `ray` module, connected to the cluster at `address` until the block ends."""
    ray = _ray()
    # Ray prints its cluster's news ("a worker died ...") on the driver's stdout, which is the
    # report's (`rag ingest --json`): it goes to stderr instead.
    with contextlib.redirect_stdout(sys.stderr):
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()


def _failed(item: PlannedFile, reason: str) -> FileOutcome:
    return FileOutcome(str(item.path), "failed", reason, item.doc_id)


def _batches(work: Sequence[PlannedFile], size: int) -> Iterator[list[PlannedFile]]:
    for start in range(0, len(work), size):
        yield list(work[start : start + size])
