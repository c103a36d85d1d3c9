"""Operations: liveness, readiness of each backend, and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from rag.api.deps import AppMetrics, AppSelfChecks, Pipeline, require
from rag.backends import Backend
from rag.errors import RagError
from rag.pipeline import RagPipeline

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up (no key needed)."""
    return {"status": "ok"}


@router.get("/readyz", dependencies=[require("read")])
async def readyz(pipeline: Pipeline, selfchecks: AppSelfChecks) -> JSONResponse:
    """Chroma, the embedder, the reranker and the generator, each checked and named, and the models'
    self-checks (`rag doctor`; null until the first run ends); 503 when one is not ready or failed."""
    checks = await run_in_threadpool(_checks, pipeline)
    selfcheck = selfchecks.results()
    selfchecks.start(pipeline)  # again in the background once the results are stale
    ready = all(check["ok"] for check in checks.values()) and not any(c.failed for c in selfcheck or [])
    body = {
        "ready": ready,
        "checks": checks,
        "selfcheck": None if selfcheck is None else [c.to_dict() for c in selfcheck],
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", dependencies=[require("read")])
async def prometheus(metrics: AppMetrics) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _checks(pipeline: RagPipeline) -> dict[str, dict[str, Any]]:
    checks: dict[str, dict[str, Any]] = {}
    try:
        pipeline.store.client().heartbeat()
        checks["chroma"] = {"ok": True, "detail": pipeline.store.location}
    except Exception as exc:
        checks["chroma"] = {"ok": False, "detail": f"{pipeline.store.location}: {exc}"}
    backends: tuple[tuple[str, Backend], ...] = (
        ("embedder", pipeline.embedder),
        ("reranker", pipeline.reranker),
        ("generator", pipeline.generator),
    )
    for role, backend in backends:
        checks[role] = _check(backend)
    return checks


def _check(backend: Backend) -> dict[str, Any]:
    where = "" if backend.device == "remote" else " (in-process)"
    try:
        backend.health()
    except RagError as exc:
        return {"ok": False, "detail": str(exc)}
    return {"ok": True, "detail": f"{backend.name}: {backend.model_name}{where}"}
