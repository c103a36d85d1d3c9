"""Parsing off the main process: a worker reads and parses the next files while the model embeds.

pypdf is pure Python, so in-process parsing would stall the embedder; in a worker it overlaps
with it, and a parser crash (or a file that kills the interpreter) fails that file alone. A
worker is also a fence: its address space is capped (`ParseLimits.memory_mb`) and a file that
takes longer than `ParseLimits.timeout_s` has its worker killed; either way that file fails with
its reason and the rest of the batch goes on.
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
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders import load_document
from rag.errors import LoadError
from rag.types import LoadedDocument

ParseResult = LoadedDocument | LoadError
_PR_SET_PDEATHSIG = 1
_START_UP_S = 120  # a spawned interpreter importing the parsers: seconds on a loaded machine


@dataclass(frozen=True)
class ParseLimits:
    timeout_s: float = 300.0  # how long the ingest waits for one file once it needs it
    memory_mb: int = 2048  # address space of a parse worker


def _start_worker(memory_mb: int, parent: int) -> None:
    """Worker initializer: cap the address space (a decompression bomb raises MemoryError here
    instead of swapping the machine), and never outlive the ingest (process `parent`)."""
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


def parse_file(path: Path, pdf_password: str | None) -> ParseResult:
    """Read and parse one file; a LoadError is returned, not raised, so it pickles as a value."""
    try:
        return load_document(path, path.read_bytes(), pdf_password=pdf_password)
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
    pdf_password: str | None,
    workers: int,
    limits: ParseLimits = ParseLimits(),
    lookahead: int = 2,
) -> Iterator[tuple[Path, ParseResult]]:
    """Parse files in order, `lookahead` ahead of the consumer, in `workers` processes (0: inline,
    without the limits)."""
    if workers <= 0:
        for path in paths:
            yield path, parse_file(path, pdf_password)
        return
    # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork.
    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        started = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(limits.memory_mb, os.getpid()),
        )
        # Wait out the worker's start-up here, so a file's time fence measures its parse alone.
        started.submit(os.getpid).result(timeout=_START_UP_S)
        return started

    pool = new_pool()
    queue: deque[tuple[Path, Future[ParseResult]]] = deque()
    todo = iter(paths)
    try:
        while True:
            while len(queue) < max(1, lookahead):
                upcoming = next(todo, None)
                if upcoming is None:
                    break
                queue.append((upcoming, _submit(pool, upcoming, pdf_password)))
            if not queue:
                return
            path, future = queue.popleft()
            try:
                result = future.result(timeout=limits.timeout_s)
            except (BrokenProcessPool, FutureTimeout) as exc:
                if isinstance(exc, FutureTimeout):
                    result = LoadError(path, f"parsing took longer than {limits.timeout_s:g}s (ingest.parse_timeout_s)")
                    _kill_workers(pool)
                else:
                    result = LoadError(path, "the parser crashed on this file")
                # Everything queued behind it died with the pool: start again from there.
                todo = iter([*(p for p, _ in queue), *todo])
                queue.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
            yield path, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """A worker stuck in a parse never returns to take a shutdown request: kill it."""
    for process in list((pool._processes or {}).values()):  # no public handle on the workers
        process.kill()


def _submit(pool: ProcessPoolExecutor, path: Path, pdf_password: str | None) -> Future[ParseResult]:
    try:
        return pool.submit(parse_file, path, pdf_password)
    except BrokenProcessPool:
        # The pool broke under an earlier file; this one's result() raises and is retried.
        failed: Future[ParseResult] = Future()
        failed.set_exception(BrokenProcessPool("pool broken"))
        return failed
