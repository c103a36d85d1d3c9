"""A client for a vLLM server's rerank (`/v1/rerank`) or score (`/v1/score`) endpoint.

With `template: client` the Qwen3-Reranker template is applied here, the way vLLM's own
examples do for a server started without a score template: the query carries the prefix,
instruction and query, each document carries itself and the suffix, and vLLM scores their
concatenation. With `template: server` vLLM was started with `--chat-template` (the project ships
rag/rerank/qwen3_reranker.jinja) and gets the raw texts and the instruction. Applying it twice, or
never, is the classic bug: `template_tokens` lets the self-check tell which happened.

Long lists are split into requests of at most `max_documents_per_request`, sent with at most
`concurrency` in flight; each request is retried on connection errors, timeouts and 5xx with
exponential backoff and jitter, within one overall deadline of `timeout_s`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from rag._http import HttpBackend, backend_errors, bearer, check_status, retrying
from rag.config import RerankSettings
from rag.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from rag.rerank import Reranker, _template


@dataclass(frozen=True)
class _Scored:
    scores: list[float]
    prompt_tokens: int | None  # what the server says it read (usage.prompt_tokens), when it says


class VllmReranker(HttpBackend, Reranker):
    name = "vllm"

    def __init__(self, settings: RerankSettings, *, client: httpx.Client | None = None) -> None:
        super().__init__(client)
        self.settings = settings
        self.vllm = settings.vllm
        self.model_name = settings.vllm.model
        self.who = f"reranker at {self.vllm.url}"

    def _new_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.vllm.url, headers=bearer(self.vllm.api_key), timeout=self.vllm.timeout_s)

    def health(self) -> None:
        """Raise a BackendError unless the server answers its health check (vLLM: GET /health)."""
        self._probe("/health", min(5.0, self.vllm.timeout_s))

    # -- scoring --------------------------------------------------------------------------
    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        if not passages:
            return []
        deadline = time.monotonic() + self.vllm.timeout_s
        task = instruction or self.settings.instruction
        step = self.vllm.max_documents_per_request
        parts = [list(passages[i : i + step]) for i in range(0, len(passages), step)]
        if len(parts) == 1:
            return self._request(query, parts[0], task, deadline).scores
        with ThreadPoolExecutor(max_workers=min(self.vllm.concurrency, len(parts))) as pool:
            results = list(pool.map(lambda part: self._request(query, part, task, deadline), parts))
        return [score for part in results for score in part.scores]

    def template_tokens(self, query: str, passage: str, *, instruction: str | None = None) -> int | None:
        """The tokens the server read for this one pair, as configured (usage.prompt_tokens)."""
        task = instruction or self.settings.instruction
        return self._request(query, [passage], task, time.monotonic() + self.vllm.timeout_s).prompt_tokens

    def _request(self, query: str, passages: list[str], task: str, deadline: float) -> _Scored:
        for attempt in retrying(self.vllm.retries, self.vllm.timeout_s):
            with attempt:
                return self._post(self._payload(query, passages, task), len(passages), deadline)
        raise BackendUnavailable("reranker: no attempt was made")  # unreachable: tenacity re-raises

    def _payload(self, query: str, passages: list[str], task: str) -> dict[str, Any]:
        if self.vllm.template == "client":
            query, passages = _template.split_for_scoring(query, passages, task)
            extra: dict[str, Any] = {}
        else:
            extra = {"instruction": task}  # rendered into the server's template
        if self.vllm.endpoint == "rerank":
            return {"model": self.vllm.model, "query": query, "documents": passages, "top_n": len(passages), **extra}
        return {"model": self.vllm.model, "text_1": query, "text_2": passages, **extra}

    def _post(self, payload: dict[str, Any], expected: int, deadline: float) -> _Scored:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendTimeout(f"{self.who}: no answer within {self.vllm.timeout_s:g}s")
        path = "/v1/rerank" if self.vllm.endpoint == "rerank" else "/v1/score"
        with backend_errors(self.who):
            response = self.client.post(path, json=payload, timeout=remaining)
        check_status(response, self.who)
        return self._parse(response, expected)

    def _parse(self, response: httpx.Response, expected: int) -> _Scored:
        try:
            body = response.json()
            rows = body["results"] if self.vllm.endpoint == "rerank" else body["data"]
            key = "relevance_score" if self.vllm.endpoint == "rerank" else "score"
            scores = {int(row["index"]): float(row[key]) for row in rows}
            usage = body.get("usage") or {}
            prompt_tokens = int(usage["prompt_tokens"]) if "prompt_tokens" in usage else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadBackendResponse(f"{self.who}: malformed response ({exc!r})") from None
        if sorted(scores) != list(range(expected)):
            raise BadBackendResponse(f"{self.who}: {len(scores)} scores for {expected} documents")
        return _Scored([scores[i] for i in range(expected)], prompt_tokens)
