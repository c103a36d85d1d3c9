"""Prometheus metrics, in a registry per app (several apps in one process, as in tests, never
collide): request counts and latencies per route, seconds per pipeline stage, candidates per
rerank, and degraded answers per stage."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rag.types import Answer, SearchResult

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("rag_requests", "HTTP requests.", ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram(
            "rag_request_seconds", "HTTP request latency.", ["route"], buckets=_SECONDS, registry=self.registry
        )
        self.stage = Histogram(
            "rag_stage_seconds", "Seconds per pipeline stage.", ["stage"], buckets=_SECONDS, registry=self.registry
        )
        self.rerank_batch = Histogram(
            "rag_rerank_candidates",
            "Passages scored per rerank call.",
            buckets=(1, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=self.registry,
        )
        self.degraded = Counter(
            "rag_degraded", "Answers or searches that fell back.", ["stage"], registry=self.registry
        )
        self.selfcheck = Gauge(
            "rag_selfcheck_ok",
            "1 when a self-check passes (warnings pass), 0 when it fails.",
            ["check"],
            registry=self.registry,
        )

    def observe(self, result: SearchResult | Answer) -> None:
        for stage, seconds in result.timings.items():
            self.stage.labels(stage).observe(seconds)
        for stage in result.degraded:
            self.degraded.labels(stage).inc()
        if result.reranked:
            self.rerank_batch.observe(result.reranked)
