"""A stand-in backend as its own process on 127.0.0.1, so a test can kill it and start it again:
`python -m tests.backend_process reranker|generator MODEL_DIR PORT` serves FakeVllm or FakeOpenAI
(tiny Qwen3 behind them) and takes orders to misbehave at POST /_fault
{"fault": ..., "delay_s": ..., "fail_times": ...}. Prints "ready" once it listens."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Mapping
from typing import Any

from rag.config import load_settings

from .fake_openai import FakeOpenAI
from .fake_vllm import FakeVllm
from .loopback import Reply, serve
from .profiles import local_reranker_env


def build(kind: str, model_dir: str) -> FakeVllm | FakeOpenAI:
    if kind == "reranker":
        from rag.rerank import build_reranker

        reranker = build_reranker(load_settings(environ=local_reranker_env(model_dir)).rerank)
        reranker.warm_up()
        return FakeVllm.around(reranker)
    from rag.generate.local import LocalGenerator

    settings = load_settings(
        environ={"RAG_GENERATE__BACKEND": "local", "RAG_GENERATE__MODEL": model_dir, "RAG_GENERATE__DEVICE": "cpu"}
    )
    generator = LocalGenerator(settings.generate)
    generator.warm_up()
    return FakeOpenAI.around(generator)


def main(kind: str, model_dir: str, port: int) -> None:
    fake = build(kind, model_dir)

    def handle(path: str, body: dict[str, Any], headers: Mapping[str, str]) -> Reply:
        if path == "/_fault":
            fake.fault = body.get("fault", "")
            fake.delay_s = float(body.get("delay_s", 0))
            fake.fail_times = int(body.get("fail_times", 0))
            return 200, "application/json", json.dumps(body).encode()
        return fake(path, body, headers)

    with serve(handle, port):
        print("ready", flush=True)
        signal.pause()  # until SIGTERM or SIGKILL


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
