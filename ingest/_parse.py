"""Parsing off the main process: a worker reads and parses the next files while the model embeds.

pypdf is pure Python, so in-process parsing would stall the embedder; in a worker it overlaps
with it, and a parser crash (or a file that kills the interpreter) fails that file alone. A
worker is also a fence: its address space is capped (`ParseLimits.memory_mb`) and a file that
takes longer than `ParseLimits.timeout_s` has its worker killed; either way that file fails with
its reason and the rest of the batch goes on. A file read by OCR reports each page through a queue:
a page read is progress, and the time fence counts from the last one, so a long scan is bounded by
`ingest.ocr_max_pages` pages of at most `timeout_s` each, not by one deadline that no long scan meets.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ingest.loaders import LoadOptions, load_document
from rag.errors import LoadError
from rag.types import LoadedDocument

ParseResult = LoadedDocument | LoadError
PageProgress = Callable[[Path, int, int], None]  # (file, pages read, pages to read)
_PR_SET_PDEATHSIG = 1
_START_UP_S = 120  # a spawned interpreter importing the parsers: seconds on a loaded machine


@dataclass(frozen=True)
class ParseLimits:
    timeout_s: float = 300.0  # how long the ingest waits for one file once it needs it
    memory_mb: int = 3072  # address space of a parse worker (OCR reserves far more of it than it uses)


_progress_queue: Any = None  # in a worker: where page progress goes to the ingest


def _start_worker(memory_mb: int, parent: int, progress: Any = None) -> None:
    """Worker initializer: cap the address space (a decompression bomb raises MemoryError here
    instead of swapping the machine), never outlive the ingest (process `parent`), and keep the
    queue that page progress goes back on."""
    global _progress_queue
    _progress_queue = progress
    cap = memory_mb * 2**20
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    """A parse worker must not outlive an ingest killed with SIGKILL. `parent` is the ingest's pid as
    the ingest saw it: read here instead, it would already be init's if the ingest died while this
    worker was starting, and the worker would live on, waiting for work that never comes."""
    try:
        armed = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0
    except (OSError, AttributeError):
        armed = False  # not Linux
    if os.getppid() != parent:  # the ingest died before the signal was armed
        os._exit(1)
    if armed:
        return

    def watch() -> None:  # where prctl is missing: poll for the parent
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def parse_file(path: Path, options: LoadOptions) -> ParseResult:
    """Read and parse one file; a LoadError is returned, not raised, so it pickles as a value."""
    if _progress_queue is not None:
        queue = _progress_queue
        options = replace(options, on_page=lambda done, total: queue.put((str(path), done, total)))
    try:
        return load_document(path, path.read_bytes(), options)
    except LoadError as exc:
        return exc
    except OSError as exc:
        return LoadError(path, f"cannot read: {exc.strerror or exc}")
    except RecursionError:
        return LoadError(path, "structure nested too deeply to parse")
    except MemoryError:
        return LoadError(path, "too large to parse within the parser's memory cap (ingest.parse_memory_mb)")


def parse_all(
    paths: Iterable[Path],
    *,
    options: LoadOptions,
    workers: int,
    limits: ParseLimits = ParseLimits(),
    lookahead: int = 2,
    on_page: PageProgress | None = None,
) -> Iterator[tuple[Path, ParseResult]]:
    """Parse files in order, `lookahead` ahead of the consumer, in `workers` processes (0: inline,
    without the limits)."""
    if workers <= 0:
        for path in paths:
            inline = options if on_page is None else replace(options, on_page=_reporter(on_page, path))
            yield path, parse_file(path, inline)
        return
    # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork.
    context = multiprocessing.get_context("spawn")
    fenced = _Fenced.start(context, workers, limits)
    queue: deque[tuple[Path, Future[ParseResult]]] = deque()
    todo = iter(paths)
    try:
        while True:
            while len(queue) < max(1, lookahead):
                upcoming = next(todo, None)
                if upcoming is None:
                    break
                queue.append((upcoming, _submit(fenced.pool, upcoming, options)))
            if not queue:
                return
            path, future = queue.popleft()
            try:
                result = fenced.wait(future, path, limits.timeout_s, on_page)
            except (BrokenProcessPool, FutureTimeout) as exc:
                if isinstance(exc, FutureTimeout):
                    result = LoadError(path, f"parsing took longer than {limits.timeout_s:g}s (ingest.parse_timeout_s)")
                    _kill_workers(fenced.pool)
                else:
                    result = LoadError(path, "the parser crashed on this file")
                # Everything queued behind it died with the pool: start again from there.
                todo = iter([*(p for p, _ in queue), *todo])
                queue.clear()
                fenced.stop()
                fenced = _Fenced.start(context, workers, limits)
            yield path, result
    finally:
        fenced.stop()


@dataclass
class _Fenced:
    """Parse workers and the queue their page progress comes back on."""

    pool: ProcessPoolExecutor
    progress: Any  # a multiprocessing queue of (file, pages read, pages to read)

    @classmethod
    def start(cls, context: Any, workers: int, limits: ParseLimits) -> _Fenced:
        # A fresh queue with every pool: a worker killed while writing to the old one may hold its lock.
        # A SimpleQueue writes on put(), with no feeder thread: a file's last page is in the pipe
        # before its result, so it is never reported after it.
        progress = context.SimpleQueue()
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(limits.memory_mb, os.getpid(), progress),
        )
        # Wait out the worker's start-up here, so a file's time fence measures its parse alone.
        pool.submit(os.getpid).result(timeout=_START_UP_S)
        return cls(pool, progress)

    def wait(
        self, future: Future[ParseResult], path: Path, timeout_s: float, on_page: PageProgress | None
    ) -> ParseResult:
        """`future`'s result; raises FutureTimeout once `timeout_s` pass with neither it nor a page of `path`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                result = future.result(timeout=min(0.25, max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                if self._report(path, on_page):
                    deadline = time.monotonic() + timeout_s
                if time.monotonic() >= deadline:
                    raise
                continue
            self._report(path, on_page)
            return result

    def _report(self, path: Path, on_page: PageProgress | None) -> bool:
        """Pass on the pages read so far; whether one of them was `path`'s."""
        news = False
        while not self.progress.empty():  # this process is the only reader
            file, done, total = self.progress.get()
            if on_page is not None:
                on_page(Path(file), done, total)
            news = news or file == str(path)
        return news

    def stop(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.progress.close()


def _reporter(on_page: PageProgress, path: Path) -> Callable[[int, int], None]:
    return lambda done, total: on_page(path, done, total)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """A worker stuck in a parse never returns to take a shutdown request: kill it."""
    for process in list((pool._processes or {}).values()):  # no public handle on the workers
        process.kill()


def _submit(pool: ProcessPoolExecutor, path: Path, options: LoadOptions) -> Future[ParseResult]:
    try:
        return pool.submit(parse_file, path, options)
    except BrokenProcessPool:
        # The pool broke under an earlier file; this one's result() raises and is retried.
        failed: Future[ParseResult] = Future()
        failed.set_exception(BrokenProcessPool("pool broken"))
        return failed
