"""A real HTTP server on 127.0.0.1 that speaks vLLM's rerank and score JSON.

It stands in for `vllm serve Qwen/Qwen3-Reranker-0.6B --runner pooling` (which cannot run on our
machines): like vLLM's original-Qwen3-reranker path it tokenises the query text and each document
text separately, concatenates them, and returns P(yes) from the yes/no logits at the last position,
here computed by the tiny Qwen3 stand-in. `fault` makes it misbehave the way real servers do.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from .loopback import Reply


class FakeVllm:
    def __init__(self, model: Any, tokenizer: Any, yes: int, no: int) -> None:
        self.model, self.tokenizer, self.yes, self.no = model, tokenizer, yes, no
        self.fault = ""  # "", "500", "slow", "malformed", "wrong-count"
        self.fail_times = 0  # with fault "500": fail this many requests, then answer
        self.delay_s = 0.0
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    @classmethod
    def around(cls, reranker: Any) -> FakeVllm:
        """Serve what an in-process Qwen3 reranker (a warmed-up `LocalQwen3Reranker`) computes."""
        return cls(reranker._model, reranker._tokenizer, reranker._yes, reranker._no)

    def scores(self, query: str, documents: list[str]) -> list[float]:
        import torch

        head = self.tokenizer.encode(query, add_special_tokens=False)
        out = []
        with torch.inference_mode():
            for document in documents:
                ids = torch.tensor([head + self.tokenizer.encode(document, add_special_tokens=False)])
                logits = self.model(input_ids=ids).logits[0, -1]
                pair = torch.stack([logits[self.no], logits[self.yes]]).float()
                out.append(float(torch.softmax(pair, dim=0)[1]))
        return out

    def __call__(self, path: str, body: dict[str, Any], headers: Mapping[str, str]) -> Reply:
        status, payload = self.handle(path, body)
        return status, "application/json", payload

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append({"path": path, **body})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self._answer(path, body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fault == "500":
            with self._lock:
                if self.fail_times > 0:
                    self.fail_times -= 1
                    return 500, b'{"error": "internal"}'
        if self.fault == "malformed":
            return 200, b'{"results": [oops'
        if path in ("/rerank", "/v1/rerank", "/v2/rerank"):
            documents = body["documents"]
            scores = self.scores(body["query"], documents)
            if self.fault == "wrong-count":
                scores = scores[:-1]
            results = sorted(
                (
                    {"index": i, "document": {"text": d}, "relevance_score": s}
                    for i, (d, s) in enumerate(zip(documents, scores, strict=False))
                ),
                key=lambda r: -r["relevance_score"],
            )
            top_n = body.get("top_n") or len(results)
            payload = {
                "id": "rerank-1",
                "model": body.get("model"),
                "usage": {"total_tokens": 0},
                "results": results[:top_n],
            }
            return 200, json.dumps(payload).encode()
        if path in ("/score", "/v1/score"):
            scores = self.scores(body["text_1"], body["text_2"])
            data = [{"index": i, "object": "score", "score": s} for i, s in enumerate(scores)]
            return 200, json.dumps(
                {"id": "score-1", "object": "list", "model": body.get("model"), "data": data, "usage": {}}
            ).encode()
        return 404, b'{"error": "not found"}'
