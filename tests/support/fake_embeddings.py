"""A real HTTP server on 127.0.0.1 speaking OpenAI's /v1/embeddings, as `vllm serve
Qwen/Qwen3-Embedding-0.6B --runner pooling` or TEI do. The vectors come from a real model (MiniLM,
in-process), which embeds exactly the text it is sent, as those servers do."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from .loopback import Reply


class FakeEmbeddings:
    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.fault = ""  # "", "500" (fail_times requests), "wrong-count"
        self.fail_times = 0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, path: str, body: dict[str, Any], headers: Mapping[str, str]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self.fault == "500" and self.fail_times > 0:
                self.fail_times -= 1
                return 500, "application/json", b'{"error": "busy"}'
            # The in-process model is not thread-safe under the server's threads.
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            vectors = self.embedder.embed_documents(texts)
        if path != "/v1/embeddings":
            return 404, "application/json", b'{"error": "not found"}'
        if self.fault == "wrong-count":
            vectors = vectors[:-1]
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
        reply = {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
        return 200, "application/json", json.dumps(reply).encode()
