"""Parsing off the main process: a worker reads and parses the next files while the model embeds.

pypdf is pure Python, so in-process parsing would stall the embedder; in a worker it overlaps
with it, and a parser crash (or a file that kills the interpreter) fails that file alone.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ingest.loaders import load_document
from rag.errors import LoadError
from rag.types import LoadedDocument

ParseResult = LoadedDocument | LoadError
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Worker initializer: a parse worker must not outlive an ingest killed with SIGKILL."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) == 0 and os.getppid() == parent:
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # where prctl is missing (not Linux): poll for the parent
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
        return LoadError(path, "too large to parse in memory")


def parse_all(
    paths: Iterable[Path], *, pdf_password: str | None, workers: int, lookahead: int = 2
) -> Iterator[tuple[Path, ParseResult]]:
    """Parse files in order, `lookahead` ahead of the consumer, in `workers` processes (0: inline)."""
    if workers <= 0:
        for path in paths:
            yield path, parse_file(path, pdf_password)
        return
    # spawn, not fork: the parent may hold torch's thread pools, which do not survive a fork.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent)
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
                result = future.result()
            except BrokenProcessPool:
                result = LoadError(path, "the parser crashed on this file")
                # Everything queued behind it died with the pool: start again from there.
                todo = iter([*(p for p, _ in queue), *todo])
                queue.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent)
            yield path, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool: ProcessPoolExecutor, path: Path, pdf_password: str | None) -> Future[ParseResult]:
    try:
        return pool.submit(parse_file, path, pdf_password)
    except BrokenProcessPool:
        # The pool broke under an earlier file; this one's result() raises and is retried.
        failed: Future[ParseResult] = Future()
        failed.set_exception(BrokenProcessPool("pool broken"))
        return failed
