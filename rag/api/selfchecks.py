"""The served pipeline's self-checks (rag.selfcheck): run in the background once the models are
loaded (a reranker that is down must not hold the start-up for its timeouts), logged one line
each, kept for /readyz and the web page's banner, exported as a metric per check, and run again
when a result is older than `REFRESH_S`."""

from __future__ import annotations

import threading
import time

from rag.api.metrics import Metrics
from rag.pipeline import RagPipeline
from rag.selfcheck import Check, log_checks, run_checks

REFRESH_S = 300.0


class SelfChecks:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._lock = threading.Lock()
        self._results: list[Check] | None = None
        self._finished = 0.0
        self._running = False

    def start(self, pipeline: RagPipeline) -> None:
        """Run the checks in a background thread, unless they are running or fresh."""
        with self._lock:
            fresh = self._results is not None and time.monotonic() - self._finished < REFRESH_S
            if self._running or fresh:
                return
            self._running = True
        threading.Thread(target=self._run, args=(pipeline,), name="rag-selfcheck", daemon=True).start()

    def _run(self, pipeline: RagPipeline) -> None:
        try:
            results = run_checks(pipeline)
            log_checks(results)
            for check in results:
                self._metrics.selfcheck.labels(check.name).set(0 if check.failed else 1)
            with self._lock:
                self._results, self._finished = results, time.monotonic()
        finally:
            with self._lock:
                self._running = False

    def results(self) -> list[Check] | None:
        """The latest results; None until the first run has finished."""
        with self._lock:
            return self._results
