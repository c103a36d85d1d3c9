"""A client for any OpenAI-compatible `/v1/chat/completions` endpoint, streaming.

The answer streams as server-sent events. Connection errors, timeouts and 5xx are retried with
backoff before the answer starts (never after a token was handed on: the reader already has it),
all within one deadline of `openai.timeout_s` for the whole answer, so a server that drips tokens
slowly fails at the deadline instead of holding a request forever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import EventSource

from rag._http import HttpBackend, backend_errors, bearer, check_status, retrying
from rag.config import GenerateSettings
from rag.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from rag.generate import Generator
from rag.generate.prompt import build_messages
from rag.types import Passage

if TYPE_CHECKING:
    from rag.embedding import Embedder


class OpenAIChatGenerator(HttpBackend, Generator):
    name = "openai"

    def __init__(
        self, settings: GenerateSettings, *, embedder: Embedder | None = None, client: httpx.Client | None = None
    ) -> None:
        super().__init__(client)
        self.settings = settings
        self.openai = settings.openai
        self.model_name = settings.openai.model
        self.who = f"generator at {self.openai.url}"

    def _new_client(self) -> httpx.Client:
        timeout = httpx.Timeout(self.openai.timeout_s, connect=self.openai.connect_timeout_s)
        base_url = self.openai.url.rstrip("/") + "/"
        return httpx.Client(base_url=base_url, headers=bearer(self.openai.api_key), timeout=timeout)

    def health(self) -> None:
        """Raise a BackendError unless the server lists its models (GET /v1/models)."""
        self._probe("models", min(5.0, self.openai.timeout_s))

    def payload(
        self, messages: list[dict[str, str]], *, max_tokens: int | None = None, temperature: float | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.openai.model,
            "messages": messages,
            "max_tokens": self.settings.max_tokens if max_tokens is None else max_tokens,
            "temperature": self.settings.temperature if temperature is None else temperature,
            "stream": True,
        }
        if self.openai.chat_template_kwargs is not None:
            body["chat_template_kwargs"] = self.openai.chat_template_kwargs
        return body

    def stream(self, question: str, passages: Sequence[Passage]) -> Iterator[str]:
        return self._stream(self.payload(build_messages(question, passages)))

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int) -> str:
        return "".join(self._stream(self.payload(messages, max_tokens=max_tokens, temperature=0.0)))

    def _stream(self, payload: dict[str, Any]) -> Iterator[str]:
        deadline = time.monotonic() + self.openai.timeout_s
        response: httpx.Response | None = None
        for attempt in retrying(self.openai.retries, self.openai.timeout_s):
            with attempt:
                response = self._open(payload, deadline)
        assert response is not None
        try:
            yield from self._pieces(response, deadline)
        finally:
            response.close()

    def _open(self, payload: dict[str, Any], deadline: float) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendTimeout(f"{self.who}: no answer within {self.openai.timeout_s:g}s")
        request = self.client.build_request(
            "POST",
            "chat/completions",
            json=payload,
            headers={"Accept": "text/event-stream"},
            timeout=httpx.Timeout(remaining, connect=min(remaining, self.openai.connect_timeout_s)),
        )
        with backend_errors(self.who):
            response = self.client.send(request, stream=True)
        try:
            check_status(response, self.who)
        except BaseException:
            response.close()
            raise
        return response

    def _pieces(self, response: httpx.Response, deadline: float) -> Iterator[str]:
        content_type = response.headers.get("content-type", "")
        with backend_errors(self.who):
            if "text/event-stream" not in content_type:
                # A server that ignored stream=true and answered in one JSON body.
                response.read()
                yield self._message_content(response)
                return
            for event in EventSource(response).iter_sse():
                if time.monotonic() > deadline:
                    raise BackendTimeout(f"{self.who}: the answer did not finish within {self.openai.timeout_s:g}s")
                if event.data.strip() == "[DONE]":
                    return
                piece = self._delta_content(event.data)
                if piece:
                    yield piece
        # vLLM and OpenAI always end with [DONE]: without it the server went away mid-answer.
        raise BackendUnavailable(f"{self.who}: the answer was cut off (the stream ended before [DONE])")

    def _delta_content(self, data: str) -> str:
        try:
            chunk = json.loads(data)
            if "error" in chunk:
                raise BadBackendResponse(f"{self.who}: {str(chunk['error'])[:200]}")
            choices = chunk.get("choices") or []
            if not choices:
                return ""  # e.g. a final usage-only chunk
            # reasoning_content (a thinking model's scratchpad) is deliberately not part of the answer.
            return str(choices[0].get("delta", {}).get("content") or "")
        except (ValueError, AttributeError, TypeError) as exc:
            raise BadBackendResponse(f"{self.who}: malformed stream chunk ({exc!r})") from None

    def _message_content(self, response: httpx.Response) -> str:
        try:
            return str(response.json()["choices"][0]["message"]["content"] or "")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BadBackendResponse(f"{self.who}: malformed response ({exc!r})") from None
