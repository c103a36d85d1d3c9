"""The one server-sent-events loop: an answer's text as it is written, then the whole answer.
Routes choose only the wire format (`EventFormat`); a failure after the stream began is sent as
an error event, described exactly as an error response would be (rag.api.errors.describe)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from rag.api.errors import describe, error_body
from rag.api.metrics import Metrics
from rag.types import Answer


class EventFormat(Protocol):
    def opening(self) -> Iterator[str]: ...

    def delta(self, text: str) -> str: ...

    def answer(self, answer: Answer) -> str: ...

    def error(self, body: dict[str, object]) -> str: ...

    def closing(self) -> Iterator[str]: ...


def event_stream(
    events: Iterator[str | Answer], wire: EventFormat, *, metrics: Metrics, request_id: str
) -> StreamingResponse:
    """Stream `events` (pieces of text, then the Answer) in `wire`'s format from the thread pool."""

    def frames() -> Iterator[str]:
        yield from wire.opening()
        try:
            for event in events:
                if isinstance(event, Answer):
                    metrics.observe(event)
                    yield wire.answer(event)
                else:
                    yield wire.delta(event)
        except Exception as exc:  # the status line is sent: the error travels as an event
            failure = describe(exc, request_id)
            yield wire.error(error_body(failure.code, failure.message))
        yield from wire.closing()

    return StreamingResponse(
        iterate_in_threadpool(frames()),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
