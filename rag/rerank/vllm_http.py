"""A client for a vLLM server's rerank (`/v1/rerank`) or score (`/v1/score`) endpoint.

With `template: client` the Qwen3-Reranker template is applied here, the way vLLM's own
examples do for a server started without a score template: the query carries the prefix,
instruction and query, each document carries itself and the suffix, and vLLM scores their
concatenation. With `template: server` vLLM was started with `--chat-template
qwen3_reranker.jinja` and gets the raw texts. Applying it twice, or never, is the classic bug.

Long lists are split into requests of at most `max_documents_per_request`, sent with at most
`concurrency` in flight; each request is retried on connection errors, timeouts and 5xx with
exponential backoff and jitter, within one overall deadline of `timeout_s`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from rag._http import HttpBackend, backend_errors, bearer, check_status, retrying
from rag.config import RerankSettings
from rag.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from rag.rerank import Reranker, _template


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

    # -- texts ----------------------------------------------------------------------------
    def texts(self, query: str, passages: Sequence[str], instruction: str | None) -> tuple[str, list[str]]:
        if self.vllm.template == "server":
            return query, list(passages)
        task = instruction or self.settings.instruction
        head = f"{_template.PREFIX}<Instruct>: {task}\n<Query>: {query}\n"
        return head, [f"<Document>: {p}{_template.SUFFIX}" for p in passages]

    # -- scoring --------------------------------------------------------------------------
    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        if not passages:
            return []
        deadline = time.monotonic() + self.vllm.timeout_s
        head, documents = self.texts(query, passages, instruction)
        step = self.vllm.max_documents_per_request
        parts = [documents[i : i + step] for i in range(0, len(documents), step)]
        if len(parts) == 1:
            return self._request(head, parts[0], deadline)
        with ThreadPoolExecutor(max_workers=min(self.vllm.concurrency, len(parts))) as pool:
            results = list(pool.map(lambda part: self._request(head, part, deadline), parts))
        return [score for part in results for score in part]

    def _request(self, query: str, documents: list[str], deadline: float) -> list[float]:
        for attempt in retrying(self.vllm.retries, self.vllm.timeout_s):
            with attempt:
                return self._post(query, documents, deadline)
        raise BackendUnavailable("reranker: no attempt was made")  # unreachable: tenacity re-raises

    def _post(self, query: str, documents: list[str], deadline: float) -> list[float]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BackendTimeout(f"{self.who}: no answer within {self.vllm.timeout_s:g}s")
        if self.vllm.endpoint == "rerank":
            path = "/v1/rerank"
            payload: dict[str, Any] = {"model": self.vllm.model, "query": query, "documents": documents}
            payload["top_n"] = len(documents)
        else:
            path = "/v1/score"
            payload = {"model": self.vllm.model, "text_1": query, "text_2": documents}
        with backend_errors(self.who):
            response = self.client.post(path, json=payload, timeout=remaining)
        check_status(response, self.who)
        return self._parse(response, len(documents))

    def _parse(self, response: httpx.Response, expected: int) -> list[float]:
        try:
            body = response.json()
            rows = body["results"] if self.vllm.endpoint == "rerank" else body["data"]
            key = "relevance_score" if self.vllm.endpoint == "rerank" else "score"
            scores = {int(row["index"]): float(row[key]) for row in rows}
        except (ValueError, KeyError, TypeError) as exc:
            raise BadBackendResponse(f"{self.who}: malformed response ({exc!r})") from None
        if sorted(scores) != list(range(expected)):
            raise BadBackendResponse(f"{self.who}: {len(scores)} scores for {expected} documents")
        return [scores[i] for i in range(expected)]
