"""The query routes: search (ranked chunks), ask (a cited answer, streamed or not) and rerank
(vLLM / Jina / Cohere shape), over the same pipeline as the CLI.

The pipeline is synchronous (torch, Chroma), so each call runs in the thread pool and the event
loop stays free.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from rag.api.auth import Principal
from rag.api.deps import AppMetrics, AppQuestionLog, AppSettings, Pipeline, in_body, require
from rag.api.errors import ApiError, check_length, request_id_of
from rag.api.models import AskRequest, QueryOptions, RerankDocument, RerankRequest, SearchRequest
from rag.api.streaming import event_stream
from rag.backends import NO_RERANKER
from rag.config import Settings
from rag.conversation import labelled, parse_history
from rag.pipeline import SearchOptions, final_answer
from rag.questionlog.store import Asked
from rag.types import Answer, Turn

router = APIRouter()


def search_options(body: QueryOptions, settings: Settings) -> SearchOptions:
    if body.top_k is not None and body.top_k > settings.api.max_top_k:
        raise ApiError(422, "invalid_request", f"top_k: at most {settings.api.max_top_k}")
    return SearchOptions(
        top_k=body.top_k,
        top_n=body.top_n,
        instruction=body.instruction,
        filters=body.filters,
        mode=body.recall_mode,
    )


@router.post("/v1/search", tags=["query"], dependencies=[require("read", collection=in_body("collection"))])
async def search(body: SearchRequest, rag: Pipeline, settings: AppSettings, metrics: AppMetrics) -> dict[str, Any]:
    """Ranked chunks with recall rank, rerank score and metadata; no generation."""
    check_length(body.query, settings.api.max_question_chars, "query")
    options = search_options(body, settings)
    result = await run_in_threadpool(rag.search, body.query, collection=body.collection, options=options)
    metrics.observe(result)
    return result.to_dict()


class AskEvents:
    """/v1/ask's events: `delta` ({"text"}) as the answer is written, then one `answer`."""

    def opening(self) -> Iterator[str]:
        return iter(())

    def delta(self, text: str) -> str:
        return _event("delta", {"text": text})

    def answer(self, answer: Answer) -> str:
        return _event("answer", answer.to_dict())

    def error(self, body: dict[str, object]) -> str:
        return _event("error", body)

    def closing(self) -> Iterator[str]:
        return iter(())


@router.post("/v1/ask", tags=["query"], response_model=None)
async def ask(
    body: AskRequest,
    request: Request,
    caller: Annotated[Principal, require("read", collection=in_body("collection"))],
    rag: Pipeline,
    settings: AppSettings,
    metrics: AppMetrics,
    question_log: AppQuestionLog,
) -> dict[str, Any] | StreamingResponse:
    """A cited answer, with an `answer_id` for feedback (POST /v1/feedback). With `stream: true`:
    server-sent events `delta` ({"text"}) as the answer is written, then one `answer` event with the
    whole Answer (citations, timings, degraded)."""
    check_length(body.question, settings.api.max_question_chars, "question")
    options = search_options(body, settings)
    history = history_of(body, settings)
    asked = Asked.of(settings, "api.ask", caller.name, body.collection, body.recall_mode)
    if not body.stream:
        events = rag.ask_stream(body.question, collection=body.collection, options=options, history=history)
        answer = await run_in_threadpool(final_answer, question_log.recorded(events, asked))
        metrics.observe(answer)
        return answer.to_dict()
    # Open the collection first: a missing one is a 404, not an error inside a 200 stream.
    await run_in_threadpool(rag.knowledge_base, body.collection)
    events = rag.ask_stream(body.question, collection=body.collection, options=options, history=history)
    return event_stream(
        question_log.recorded(events, asked), AskEvents(), metrics=metrics, request_id=request_id_of(request)
    )


def history_of(body: AskRequest, settings: Settings) -> list[Turn]:
    return parse_history(labelled([turn.model_dump() for turn in body.history]), settings.conversation)


@router.post("/v1/rerank", tags=["rerank"], dependencies=[require("read")])
async def rerank(
    body: RerankRequest, request: Request, rag: Pipeline, settings: AppSettings, metrics: AppMetrics
) -> dict[str, Any]:
    """vLLM / Jina / Cohere rerank: {model, query, documents, top_n} -> results best first,
    relevance_score = the configured reranker's score (Qwen3: P(yes))."""
    limits = settings.api
    if len(body.documents) > limits.max_rerank_documents:
        raise ApiError(413, "too_many_documents", f"at most {limits.max_rerank_documents} documents per request")
    check_length(body.query, limits.max_question_chars, "query")
    if rag.reranker.name == NO_RERANKER:
        raise ApiError(503, "no_reranker", f"no reranker is configured here (rerank.backend: {NO_RERANKER})")
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
        {"index": i, "document": {"text": texts[i]} if body.return_documents else None, "relevance_score": scores[i]}
        for i in order
    ]
    return {
        "id": f"rerank-{request_id_of(request)}",
        "model": body.model or rag.reranker.model_name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "results": results,
    }


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
