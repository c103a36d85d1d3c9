"""Serving faults against a real `rag serve`: the reranker and the generator are processes on
127.0.0.1 (speaking vLLM's and OpenAI's JSON, tiny Qwen3 behind them) that this test starts,
breaks, kills and starts again; Chroma is a real `chroma run`, killed, stopped and restarted under
traffic. Every answer comes within the broken backend's timeout + 1 s, flagged degraded or a clear
503, and the service is whole again by itself once the backend is back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .support.documents import RUNBOOK
from .support.processes import free_port, rag_serve, run_chroma, stop
from .support.profiles import OFFLINE_PROFILE, PROJECT

pytestmark = [pytest.mark.slow, pytest.mark.server]

KEY = {"Authorization": "Bearer faults-admin"}
RERANK_TIMEOUT_S = 2.0
GENERATE_TIMEOUT_S = 3.0
CHROMA_TIMEOUT_S = 2.0
QUESTION = "What does error 809 mean?"


class Backend:
    """tests/support/backend_process.py as a child process on a fixed port, so it can come back."""

    def __init__(self, kind: str, model_dir: Path, log: Path) -> None:
        self.kind, self.model_dir, self.log = kind, model_dir, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        with self.log.open("a") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.support.backend_process", self.kind, str(self.model_dir), str(self.port)],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                cwd=PROJECT,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # "ready", or "" if it died; its start-up is bounded by torch's import
        assert line.strip() == "ready", f"{self.kind} backend did not start: {self.log.read_text()[-2000:]}"

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def fault(self, fault: str = "", *, delay_s: float = 0.0, fail_times: int = 0) -> None:
        body = {"fault": fault, "delay_s": delay_s, "fail_times": fail_times}
        httpx.post(f"{self.url}/_fault", json=body, timeout=5).raise_for_status()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop(self.process)


@dataclass
class Outcome:
    status: int
    seconds: float
    body: dict
    finished: float = 0.0  # time.monotonic() when the answer came

    @property
    def degraded(self) -> list[str]:
        return list(self.body.get("degraded", []))


@dataclass
class Service:
    api: str
    reranker: Backend
    generator: Backend
    chroma: subprocess.Popen[bytes]
    chroma_port: int
    chroma_dir: Path

    def call(self, route: str, **extra: object) -> Outcome:
        started = time.monotonic()
        body = {"query" if route == "/v1/search" else "question": QUESTION, "collection": "it-kb", **extra}
        response = httpx.post(f"{self.api}{route}", json=body, headers=KEY, timeout=60)
        finished = time.monotonic()
        return Outcome(response.status_code, finished - started, response.json(), finished)


@pytest.fixture
def service(tmp_path: Path, tiny_models: dict[str, Path]) -> Iterator[Service]:
    chroma_port = free_port()
    with ExitStack() as stack:
        chroma = stack.enter_context(run_chroma(tmp_path / "chroma", chroma_port, tmp_path / "chroma.log"))
        reranker = Backend("reranker", tiny_models["reranker"], tmp_path / "reranker.log")
        generator = Backend("generator", tiny_models["generator"], tmp_path / "generator.log")
        for backend in (reranker, generator):
            stack.callback(backend.close)
            backend.start()
        env = {
            **os.environ,
            "RAG_CONFIG": str(OFFLINE_PROFILE),
            "RAG_DATA_DIR": str(tmp_path / "api"),
            "RAG_CHROMA__URL": f"http://127.0.0.1:{chroma_port}",
            "RAG_CHROMA__TIMEOUT_S": str(CHROMA_TIMEOUT_S),
            "RAG_RECALL__TOP_K": "20",
            "RAG_RERANK__BACKEND": "vllm",
            "RAG_RERANK__VLLM__URL": reranker.url,
            "RAG_RERANK__VLLM__TIMEOUT_S": str(RERANK_TIMEOUT_S),
            "RAG_RERANK__VLLM__RETRIES": "1",
            "RAG_GENERATE__BACKEND": "openai",
            "RAG_GENERATE__OPENAI__URL": f"{generator.url}/v1",
            "RAG_GENERATE__OPENAI__TIMEOUT_S": str(GENERATE_TIMEOUT_S),
            "RAG_GENERATE__OPENAI__CONNECT_TIMEOUT_S": "1",
            "RAG_GENERATE__OPENAI__RETRIES": "1",
            "RAG_GENERATE__MAX_TOKENS": "8",
            "RAG_GENERATE__MIN_RERANK_SCORE": "0",  # the tiny reranker's scores are noise: always ask the LLM
            "RAG_API__KEYS": json.dumps([{"key": "faults-admin", "role": "admin"}]),
        }
        api = stack.enter_context(rag_serve(env, workers=1, log=tmp_path / "api.log"))
        files = [("files", ("runbook.md", RUNBOOK.encode(), "text/markdown"))]
        uploaded = httpx.post(f"{api}/v1/collections/it-kb/documents", files=files, headers=KEY, timeout=120)
        assert uploaded.status_code == 200 and uploaded.json()["failed"] == 0, uploaded.text
        wrong = httpx.post(f"{api}/v1/search", json={"query": "q"}, headers={"Authorization": "Bearer wrong-secret-42"})
        assert wrong.status_code == 401
        yield Service(api, reranker, generator, chroma, chroma_port, tmp_path / "chroma")
    log = (tmp_path / "api.log").read_text()
    assert "Traceback" not in log and " 500 " not in log, log[-3000:]
    assert "faults-admin" not in log and "wrong-secret-42" not in log  # keys, right or wrong, are never logged


def healthy(service: Service, route: str) -> Outcome:
    outcome = service.call(route)
    assert outcome.status == 200 and outcome.degraded == [], outcome.body
    return outcome


# (fault, delay_s, fail_times) as the backend process plays them
RERANKER_FAULTS = {
    "hanging": ("slow", 3600.0, 0),
    "slow": ("slow", RERANK_TIMEOUT_S + 2, 0),
    "500s": ("500", 0.0, 1000),
    "malformed JSON": ("malformed", 0.0, 0),
    "wrong score count": ("wrong-count", 0.0, 0),
}
GENERATOR_FAULTS = {
    "hanging": ("slow", 3600.0, 0),
    "slow": ("slow", GENERATE_TIMEOUT_S + 2, 0),
    "dripping past the deadline": ("drip", 1.0, 0),
    "500s": ("500", 0.0, 1000),
    "malformed stream": ("malformed", 0.0, 0),
    "cut mid-stream": ("cut", 0.0, 0),
}


def test_backend_faults_degrade_within_the_timeout_and_recover(service: Service) -> None:
    table: list[str] = []
    baseline = healthy(service, "/v1/search").seconds  # the stages before the broken one
    for name, (fault, delay_s, fail_times) in RERANKER_FAULTS.items():
        service.reranker.fault(fault, delay_s=delay_s, fail_times=fail_times)
        broken = service.call("/v1/search")
        assert broken.status == 200 and broken.degraded == ["rerank"], (name, broken.body)
        assert broken.seconds <= RERANK_TIMEOUT_S + 1 + baseline, (name, broken.seconds)
        service.reranker.fault()
        healed = healthy(service, "/v1/search")
        table.append(f"reranker {name}: {broken.seconds:.2f}s degraded, next request whole in {healed.seconds:.2f}s")

    baseline = healthy(service, "/v1/ask").body["timings"]
    before_generate = sum(v for k, v in baseline.items() if k not in ("generate", "total")) / 1000
    for name, (fault, delay_s, fail_times) in GENERATOR_FAULTS.items():
        service.generator.fault(fault, delay_s=delay_s, fail_times=fail_times)
        broken = service.call("/v1/ask")
        assert broken.status == 200 and broken.degraded == ["generate"], (name, broken.body)
        # What came before the fault is kept when there is some; never an empty answer.
        assert broken.body["generator"] == "extractive" or broken.body["answer"].strip(), (name, broken.body)
        assert broken.body["notes"], (name, broken.body)
        assert broken.seconds <= GENERATE_TIMEOUT_S + 1 + before_generate + 1, (name, broken.seconds)
        service.generator.fault()
        healed = healthy(service, "/v1/ask")
        table.append(f"generator {name}: {broken.seconds:.2f}s degraded, next request whole in {healed.seconds:.2f}s")

    # Down: the process killed (connection refused), then started again on its port.
    for backend, route, stage in (
        (service.reranker, "/v1/search", "rerank"),
        (service.generator, "/v1/ask", "generate"),
    ):
        backend.kill()
        broken = service.call(route)
        assert broken.status == 200 and broken.degraded == [stage], broken.body
        assert broken.seconds <= max(RERANK_TIMEOUT_S, GENERATE_TIMEOUT_S) + 1 + before_generate, broken.seconds
        backend.start()
        healed = healthy(service, route)
        table.append(f"{backend.kind} down: {broken.seconds:.2f}s degraded, whole again at once after restart")
    print("\n" + "\n".join(table))


def search_until(service: Service, stop_at: threading.Event, outcomes: list[Outcome], deadline: float) -> None:
    while not stop_at.is_set() and time.monotonic() < deadline:
        try:
            outcomes.append(service.call("/v1/search"))
        except httpx.HTTPError as exc:  # the API itself must never drop a request
            outcomes.append(Outcome(0, 0.0, {"error": {"message": repr(exc)}}))


def test_chroma_restarted_and_hung_under_traffic(service: Service, tmp_path: Path) -> None:
    expected = healthy(service, "/v1/search").body["passages"][0]["chunk_id"]
    stop_at = threading.Event()
    outcomes: list[Outcome] = []
    clients = [
        threading.Thread(target=search_until, args=(service, stop_at, outcomes, time.monotonic() + 120))
        for _ in range(4)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(2)
        # Killed outright, down for 3 s, started again on the same port and data.
        service.chroma.send_signal(signal.SIGKILL)
        service.chroma.wait(timeout=10)
        killed_at = time.monotonic()
        time.sleep(3)
        with run_chroma(service.chroma_dir, service.chroma_port, tmp_path / "chroma.log") as restarted:
            back_at = time.monotonic()
            time.sleep(4)
            # Hung: SIGSTOP for 4 s, then on again.
            restarted.send_signal(signal.SIGSTOP)
            hung_at = time.monotonic()
            time.sleep(4)
            restarted.send_signal(signal.SIGCONT)
            resumed_at = time.monotonic()
            time.sleep(4)
            stop_at.set()
            for client in clients:
                client.join(timeout=60)
            after = healthy(service, "/v1/search")
    finally:
        stop_at.set()
    assert after.body["passages"][0]["chunk_id"] == expected  # same data after the restart
    assert outcomes, "no traffic"
    for outcome in outcomes:
        assert outcome.status in (200, 503), outcome.body
        assert outcome.seconds <= CHROMA_TIMEOUT_S + 1, outcome
        if outcome.status == 503:
            assert outcome.body["error"]["code"] == "store_unavailable", outcome.body
    failed = [o for o in outcomes if o.status == 503]
    assert failed, "the outage was never seen: the test did not test anything"
    # Whole again by itself: once Chroma answers again, so does every search.
    assert all(o.status == 200 for o in outcomes if o.finished > resumed_at + CHROMA_TIMEOUT_S + 1)
    assert any(back_at < o.finished < hung_at and o.status == 200 for o in outcomes)
    print(
        f"\nchroma: {len(outcomes)} searches by 4 clients, {len(failed)} answered 503 store_unavailable, "
        f"slowest {max(o.seconds for o in outcomes):.2f}s; killed at +0, back at +{back_at - killed_at:.1f}s, "
        f"hung +{hung_at - killed_at:.1f}s to +{resumed_at - killed_at:.1f}s"
    )
