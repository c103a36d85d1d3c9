"""The HTTP service: search, ask (streaming), rerank, over the same pipeline as the CLI.

Models load once, in the lifespan; requests never load anything. The pipeline is synchronous
(torch, Chroma), so each call runs in the thread pool and the event loop stays free.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from rag.api.auth import KeyRing
from rag.api.body_limit import BodyLimit
from rag.api.deps import Pipeline, PresentedKey
from rag.api.documents import documents_router
from rag.api.errors import ApiError, check_length, error_body, install_error_handlers
from rag.api.models import AskRequest, QueryOptions, RerankDocument, RerankRequest, SearchRequest
from rag.api.openai_chat import chat_router
from rag.api.ops import Metrics, ops_router
from rag.api.web import install_web
from rag.config import Settings, load_settings
from rag.errors import BackendError, RagError
from rag.pipeline import RagPipeline, SearchOptions
from rag.types import Answer

log = logging.getLogger("rag.api")


def create_app(settings: Settings, *, pipeline: RagPipeline | None = None) -> FastAPI:
    keys = KeyRing(settings.api.keys)
    limits = settings.api
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ready = pipeline
        if ready is None:
            ready = await run_in_threadpool(_load_pipeline, settings)
        app.state.pipeline = ready
        try:
            yield
        finally:
            ready.close()

    app = FastAPI(
        title="rag-kb",
        summary="Knowledge-base Q&A: search, cited answers, reranking.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=settings.api)
    app.include_router(documents_router(settings, keys))
    app.include_router(chat_router(settings, keys, metrics))
    app.include_router(ops_router(keys, metrics))
    install_web(app)
    app.state.metrics = metrics

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

    def may_read(key: str | None, collection: str | None) -> None:
        keys.authorize(key, "read", collection if collection is not None else settings.collection)

    def options(body: QueryOptions) -> SearchOptions:
        if body.top_k is not None and body.top_k > limits.max_top_k:
            raise ApiError(422, "invalid_request", f"top_k: at most {limits.max_top_k}")
        return SearchOptions(
            top_k=body.top_k,
            top_n=body.top_n,
            instruction=body.instruction,
            filters=body.filters,
            mode=body.recall_mode,
        )

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is up (no key needed)."""
        return {"status": "ok"}

    @app.post("/v1/search", tags=["query"])
    async def search(body: SearchRequest, rag: Pipeline, key: PresentedKey) -> dict[str, Any]:
        """Ranked chunks with recall rank, rerank score and metadata; no generation."""
        may_read(key, body.collection)
        check_length(body.query, limits.max_question_chars, "query")
        result = await run_in_threadpool(rag.search, body.query, collection=body.collection, options=options(body))
        metrics.observe(result)
        return result.to_dict()

    @app.post("/v1/ask", tags=["query"], response_model=None)
    async def ask(body: AskRequest, rag: Pipeline, key: PresentedKey) -> dict[str, Any] | StreamingResponse:
        """A cited answer. With `stream: true`: server-sent events `delta` ({"text"}) as the answer is
        written, then one `answer` event with the whole Answer (citations, timings, degraded)."""
        may_read(key, body.collection)
        check_length(body.question, limits.max_question_chars, "question")
        if not body.stream:
            answer = await run_in_threadpool(rag.ask, body.question, collection=body.collection, options=options(body))
            metrics.observe(answer)
            return answer.to_dict()
        # Open the collection first: a missing one is a 404, not an error inside a 200 stream.
        await run_in_threadpool(rag.knowledge_base, body.collection)
        events = rag.ask_stream(body.question, collection=body.collection, options=options(body))
        return StreamingResponse(
            iterate_in_threadpool(_sse(events, metrics)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/rerank", tags=["rerank"])
    async def rerank(body: RerankRequest, request: Request, rag: Pipeline, key: PresentedKey) -> dict[str, Any]:
        """vLLM / Jina / Cohere rerank: {model, query, documents, top_n} -> results best first,
        relevance_score = the configured reranker's score (Qwen3: P(yes))."""
        keys.authorize(key, "read", None)
        if len(body.documents) > limits.max_rerank_documents:
            raise ApiError(413, "too_many_documents", f"at most {limits.max_rerank_documents} documents per request")
        check_length(body.query, limits.max_question_chars, "query")
        if rag.reranker.name == "none":
            raise ApiError(503, "no_reranker", "no reranker is configured here (rerank.backend: none)")
        texts = [d.text if isinstance(d, RerankDocument) else d for d in body.documents]
        task = body.instruction if body.instruction is not None else settings.rerank.instruction

        def score() -> tuple[list[float], int]:
            tokens = sum(rag.embedder.count_tokens(body.query + t) for t in texts)
            return rag.reranker.score(body.query, texts, instruction=task), tokens

        scores, tokens = await run_in_threadpool(score)
        metrics.rerank_batch.observe(len(texts))
        order = sorted(range(len(texts)), key=lambda i: -scores[i])
        if body.top_n:
            order = order[: body.top_n]
        results = [
            {
                "index": i,
                "document": {"text": texts[i]} if body.return_documents else None,
                "relevance_score": scores[i],
            }
            for i in order
        ]
        return {
            "id": f"rerank-{request.state.request_id}",
            "model": body.model or _reranker_model(settings),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "results": results,
        }

    return app


def app_from_environment() -> FastAPI:
    """The app for `uvicorn --factory` (`rag serve --workers N`): each worker process reads its
    settings from RAG_CONFIG and the environment."""
    return create_app(load_settings())


def _load_pipeline(settings: Settings) -> RagPipeline:
    pipeline = RagPipeline(settings)
    pipeline.warm_up()
    return pipeline


def _reranker_model(settings: Settings) -> str:
    return settings.rerank.vllm.model if settings.rerank.backend == "vllm" else settings.rerank.model


def _sse(events: Iterator[str | Answer], metrics: Metrics) -> Iterator[str]:
    """Server-sent events; a failure after the stream began is an `error` event (the status is sent)."""
    try:
        for event in events:
            if isinstance(event, Answer):
                metrics.observe(event)
                yield _event("answer", event.to_dict())
            else:
                yield _event("delta", {"text": event})
    except BackendError as exc:
        yield _event("error", error_body("backend_unavailable", str(exc)))
    except RagError as exc:
        log.error("streamed answer failed: %s", exc)
        yield _event("error", error_body("internal_error", str(exc)))


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
