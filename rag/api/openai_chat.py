"""OpenAI-compatible chat over a knowledge base: any OpenAI SDK or chat UI can ask our collections.

The model name selects the collection (`GET /v1/models` lists those the key may read). The last
user message is the question; the user and assistant messages before it are the conversation it
follows (system, developer and tool messages are not: they instruct a model, and we answer from
the knowledge base alone), so a follow-up is searched made standalone. The answer text
cites [n]; the sources come in an extra `citations` field, on the completion or, when streaming,
on the last chunk before `[DONE]`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from rag.api.auth import Principal
from rag.api.deps import AppMetrics, AppQuestionLog, AppSettings, Pipeline, Reader, in_body, require
from rag.api.errors import ApiError, check_length, request_id_of
from rag.api.models import JsonBody
from rag.api.streaming import event_stream
from rag.config import ConversationSettings
from rag.conversation import parse_history
from rag.pipeline import final_answer
from rag.questionlog.store import Asked
from rag.types import Answer, Turn

router = APIRouter(tags=["openai"])


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(JsonBody):
    # OpenAI clients send many optional fields (temperature, top_p, user...): accepted, not used.
    model_config = ConfigDict(extra="allow")
    model: str = Field(description="The collection to answer from.", examples=["default"])
    messages: list[ChatMessage] = Field(
        min_length=1, examples=[[{"role": "user", "content": "How do I reset my password?"}]]
    )
    stream: bool = False


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if part.get("type") in (None, "text"))
    return content or ""


# Roles OpenAI defines that carry no part of the user's conversation with the knowledge base.
_NOT_CONVERSATION = frozenset({"system", "developer", "tool", "function"})


def conversation_of(body: ChatRequest, settings: ConversationSettings) -> tuple[str, list[Turn]]:
    """The question (the last user message) and the conversation before it."""
    for last in range(len(body.messages) - 1, -1, -1):
        message = body.messages[last]
        if message.role == "user" and _text(message.content).strip():
            break
    else:
        raise ApiError(422, "invalid_request", "messages: no user message with text")
    earlier = [
        (f"messages.{i}", {"role": m.role, "content": _text(m.content)})
        for i, m in enumerate(body.messages[:last])
        if m.role not in _NOT_CONVERSATION and not (m.role == "assistant" and not _text(m.content).strip())
    ]
    return _text(body.messages[last].content).strip(), parse_history(earlier, settings, field="messages")


@router.get("/v1/models")
async def models(pipeline: Pipeline, caller: Reader) -> dict[str, Any]:
    """The collections this key may ask, as OpenAI models."""
    names = await run_in_threadpool(pipeline.store.list_knowledge_bases)
    visible = [n for n in names if caller.may("read", n)]
    return {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "rag-kb"} for n in visible]}


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest,
    request: Request,
    caller: Annotated[Principal, require("read", collection=in_body("model"))],
    pipeline: Pipeline,
    settings: AppSettings,
    metrics: AppMetrics,
    question_log: AppQuestionLog,
) -> dict[str, Any] | StreamingResponse:
    collection = body.model
    question, history = conversation_of(body, settings.conversation)
    check_length(question, settings.api.max_question_chars, "question")
    await run_in_threadpool(pipeline.knowledge_base, collection)  # a missing collection is a 404
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    asked = Asked.of(settings, "api.chat", caller.name, collection, None)
    events = question_log.recorded(pipeline.ask_stream(question, collection=collection, history=history), asked)
    if not body.stream:
        answer = await run_in_threadpool(final_answer, events)
        metrics.observe(answer)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": collection,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            **_extras(answer),
        }
    return event_stream(
        events, ChatChunks(completion_id, created, collection), metrics=metrics, request_id=request_id_of(request)
    )


class ChatChunks:
    """OpenAI's streamed chat.completion.chunk objects, the sources on the last one, then [DONE]."""

    def __init__(self, completion_id: str, created: int, model: str) -> None:
        self.completion_id, self.created, self.model = completion_id, created, model

    def _chunk(self, delta: dict[str, Any], finish: Literal["stop"] | None = None, **extra: Any) -> str:
        body = {
            "id": self.completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return _data(body)

    def opening(self) -> Iterator[str]:
        yield self._chunk({"role": "assistant", "content": ""})

    def delta(self, text: str) -> str:
        return self._chunk({"content": text})

    def answer(self, answer: Answer) -> str:
        return self._chunk({}, "stop", **_extras(answer))

    def error(self, body: dict[str, object]) -> str:
        return _data(body)

    def closing(self) -> Iterator[str]:
        yield "data: [DONE]\n\n"


def _extras(answer: Answer) -> dict[str, Any]:
    return {
        "answer_id": answer.answer_id,
        "logged": answer.logged,
        "query": answer.query or answer.question,
        "citations": [c.to_dict() for c in answer.citations],
        "found": answer.found,
        "degraded": list(answer.degraded),
        "timings": {k: round(v, 4) for k, v in answer.timings.items()},
    }


def _data(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
