"""How many recalled candidates a reranker can score within a time budget, from the speed measured
on its own calls: a GPU reranks all 100, vLLM's CPU build a few dozen, a GPU-sized model in-process
on a CPU a handful. Speed is counted in characters per second (no tokenizer needed here); each
call updates a weighted mean, so a warmed-up server is not judged by its slow first call."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from rag.rerank import Reranker

# Text for the start-up measurement: four passages of typical length, English and Chinese.
_CALIBRATION_QUERY = "How long may an incident stay unacknowledged before it is escalated?"
_CALIBRATION_PASSAGES = tuple(
    (text * 12)[:1600]
    for text in (
        "Escalate an incident to the response manager when nobody has acknowledged it within 15 minutes. ",
        "Patch management identifies, acquires, installs and verifies patches for products and systems. ",
        "发现疑似病毒、钓鱼邮件或数据泄露时，应当在一小时内向信息安全部报告，不得隐瞒安全事件。",
        "Media sanitization renders access to target data on the media infeasible for a given effort. ",
    )
)
_WEIGHT = 0.3  # of the newest call in the running mean


class Throughput:
    """Characters per second a reranker has scored, measured on its calls."""

    def __init__(self) -> None:
        self._rate: float | None = None
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        return self._rate

    def record(self, characters: int, seconds: float) -> None:
        if seconds <= 0 or characters <= 0:
            return
        measured = characters / seconds
        with self._lock:
            self._rate = measured if self._rate is None else (1 - _WEIGHT) * self._rate + _WEIGHT * measured

    def calibrate(self, reranker: Reranker) -> None:
        """One small call to warm the backend up, then one timed call: the first figure."""
        reranker.score(_CALIBRATION_QUERY, _CALIBRATION_PASSAGES[:1])
        started = time.perf_counter()
        reranker.score(_CALIBRATION_QUERY, _CALIBRATION_PASSAGES)
        self.record(sum(map(len, _CALIBRATION_PASSAGES)), time.perf_counter() - started)

    def fits(self, passages: Sequence[str], budget_s: float) -> int:
        """How many of `passages`, first to last, fit in `budget_s` (at least one)."""
        if self._rate is None:
            return len(passages)
        allowance, count = self._rate * budget_s, 0
        for text in passages:
            allowance -= len(text)
            if allowance < 0:
                break
            count += 1
        return max(1, count)
