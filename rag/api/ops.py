"""Operations: readiness of each backend, and Prometheus metrics.

Metrics live in a registry per app (several apps in one process, as in tests, never collide):
request counts and latencies per route, seconds per pipeline stage, candidates per rerank, and
degraded answers per stage.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from rag.api.auth import KeyRing
from rag.api.deps import Pipeline, PresentedKey
from rag.errors import RagError
from rag.pipeline import RagPipeline
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

    def observe(self, result: SearchResult | Answer) -> None:
        for stage, seconds in result.timings.items():
            self.stage.labels(stage).observe(seconds)
        for stage in result.degraded:
            self.degraded.labels(stage).inc()
        if result.reranked:
            self.rerank_batch.observe(result.reranked)


def ops_router(keys: KeyRing, metrics: Metrics) -> APIRouter:
    router = APIRouter(tags=["ops"])

    @router.get("/readyz")
    async def readyz(pipeline: Pipeline, key: PresentedKey) -> JSONResponse:
        """Chroma, the reranker and the generator, each checked and named; 503 when one is not ready."""
        keys.authorize(key, "read", None)
        checks = await run_in_threadpool(_checks, pipeline)
        ready = all(check["ok"] for check in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @router.get("/metrics")
    async def prometheus(key: PresentedKey) -> Response:
        keys.authorize(key, "read", None)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router


def _checks(pipeline: RagPipeline) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        pipeline.store.client().heartbeat()
        checks["chroma"] = {"ok": True, "detail": pipeline.store.location}
    except Exception as exc:
        checks["chroma"] = {"ok": False, "detail": f"{pipeline.store.location}: {exc}"}
    components = (("embedder", pipeline.embedder), ("reranker", pipeline.reranker), ("generator", pipeline.generator))
    for role, component in components:
        name = getattr(component, "name", None) or getattr(component, "model_name", "")
        health = getattr(component, "health", None)
        if health is None:
            checks[role] = {"ok": True, "detail": f"{name} (in-process)"}
            continue
        try:
            health()
            checks[role] = {"ok": True, "detail": name}
        except RagError as exc:
            checks[role] = {"ok": False, "detail": str(exc)}
    return checks
