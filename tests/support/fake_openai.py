"""An OpenAI-compatible chat server on 127.0.0.1, backed by the tiny Qwen3 generator.

It stands in for `vllm serve Qwen/Qwen3-8B` (which cannot run here): it renders the request's
messages with the model's chat template and the request's `chat_template_kwargs`, decodes
greedily, and answers as JSON or as server-sent events, like vLLM. `fault` makes it misbehave.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from .loopback import Reply


class FakeOpenAI:
    def __init__(self, model: Any, tokenizer: Any, *, api_key: str | None = None) -> None:
        self.model, self.tokenizer, self.api_key = model, tokenizer, api_key
        # "", "500", "slow" (before answering), "drip" (between chunks), "malformed", "cut" (mid-stream)
        self.fault = ""
        self.fail_times = 0  # with fault "500": fail this many requests, then answer
        self.delay_s = 0.0
        self.script: str | None = None  # answer this instead of what the tiny model writes
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def around(cls, generator: Any, *, api_key: str | None = None) -> FakeOpenAI:
        """Serve what an in-process Qwen3 generator (a warmed-up `LocalGenerator`) writes."""
        return cls(generator._model, generator._tokenizer, api_key=api_key)

    def complete(self, body: dict[str, Any]) -> str:
        import torch

        inputs = self.tokenizer.apply_chat_template(
            body["messages"],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
            **(body.get("chat_template_kwargs") or {}),
        )
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=int(body.get("max_tokens") or 16),
                do_sample=False,
                pad_token_id=self.tokenizer.eos_token_id,
            )
        return str(self.tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))

    def __call__(self, path: str, body: dict[str, Any], headers: Mapping[str, str]) -> Reply:
        with self._lock:
            self.requests.append({"path": path, "authorization": headers.get("Authorization"), **body})
        if self.api_key is not None and headers.get("Authorization") != f"Bearer {self.api_key}":
            return 401, "application/json", b'{"error": {"message": "invalid api key"}}'
        if path != "/v1/chat/completions":
            return 404, "application/json", b'{"error": "not found"}'
        if self.fault == "slow":
            time.sleep(self.delay_s)
        if self.fault == "500":
            with self._lock:
                if self.fail_times > 0:
                    self.fail_times -= 1
                    return 500, "application/json", b'{"error": "internal"}'
        text = self.script if self.script is not None else self.complete(body)
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            reply = {"id": "chat-1", "object": "chat.completion", "choices": [{"index": 0, "message": message}]}
            return 200, "application/json", json.dumps(reply).encode()
        return 200, "text/event-stream", self._events(text)

    def _events(self, text: str) -> Iterator[bytes]:
        pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
        for i, piece in enumerate(pieces):
            if self.fault == "drip":
                time.sleep(self.delay_s)
            if self.fault == "malformed" and i == 1:
                yield b"data: {not json\n\n"
            if self.fault == "cut" and i == 2:
                return  # the connection closes with no [DONE]
            choice = {"index": 0, "delta": {"content": piece}}
            chunk = {"id": "chat-1", "object": "chat.completion.chunk", "choices": [choice]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        yield b"data: [DONE]\n\n"
