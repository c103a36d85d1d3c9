"""The HTTP service: `create_app(settings)` wires the routers (one module per resource) to one
pipeline, loaded once in the lifespan; requests never load anything."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from rag.api import collections, documents, feedback, ops, query, sources
from rag.api import openai_chat as chat
from rag.api.auth import KeyRing
from rag.api.body_limit import BodyLimit
from rag.api.errors import install_error_handlers
from rag.api.metrics import Metrics
from rag.api.selfchecks import SelfChecks
from rag.api.web import install_web
from rag.config import Settings, load_settings
from rag.pipeline import RagPipeline
from rag.questionlog.store import QuestionLog

log = logging.getLogger("rag.api")


def create_app(settings: Settings, *, pipeline: RagPipeline | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ready = pipeline
        if ready is None:
            ready = await run_in_threadpool(_load_pipeline, settings)
        app.state.pipeline = ready
        app.state.selfchecks.start(ready)
        await run_in_threadpool(question_log.prepare)
        try:
            yield
        finally:
            ready.close()
            question_log.close()

    app = FastAPI(
        title="rag-kb",
        summary="Knowledge-base Q&A: search, cited answers, reranking.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = KeyRing(settings.api.keys)
    app.state.metrics = metrics = Metrics()
    app.state.selfchecks = SelfChecks(metrics)
    app.state.question_log = question_log = QuestionLog(settings)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=settings.api)
    for router in (
        query.router,
        chat.router,
        feedback.router,
        collections.router,
        documents.router,
        sources.router,
        ops.router,
    ):
        app.include_router(router)
    install_web(app)

    @app.middleware("http")
    async def request_id(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request.state.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")  # the template, not the raw path: bounded labels
        metrics.requests.labels(path, request.method, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        log.info(
            "%s %s %s %d %.0fms",
            request.state.request_id,
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    return app


def app_from_environment() -> FastAPI:
    """The app for `uvicorn --factory` (`rag serve --workers N`): each worker process reads its
    settings from RAG_CONFIG and the environment."""
    return create_app(load_settings())


def _load_pipeline(settings: Settings) -> RagPipeline:
    pipeline = RagPipeline(settings)
    pipeline.warm_up()
    return pipeline
