"""Shared fixtures. Real parts throughout: real PDFs, real Chroma, real models (MiniLM) and
tiny random-weight Qwen3 stand-ins built once per session with the real Qwen3 tokenizer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from rag.config import Settings, load_settings

PROJECT = Path(__file__).resolve().parent.parent
OFFLINE_PROFILE = PROJECT / "configs" / "offline.yaml"
# Read before the autouse fixture clears RAG_* variables.
_SHARED_ENV = os.environ.get("RAG_SHARED_DIR")


def shared_dir() -> Path | None:
    for candidate in (_SHARED_ENV, PROJECT.parent / "shared"):
        if candidate and (Path(candidate) / "corpus").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("RAG_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared() -> Path:
    found = shared_dir()
    if found is None:
        pytest.skip("test data ../shared (or RAG_SHARED_DIR) is absent")
    return found


@pytest.fixture(scope="session")
def corpus(shared: Path) -> Path:
    return shared / "corpus"


def offline_env(data_dir: Path) -> dict[str, str]:
    """The environment that points `rag` (a subprocess) at the offline profile and `data_dir`."""
    return {"RAG_CONFIG": str(OFFLINE_PROFILE), "RAG_DATA_DIR": str(data_dir)}


def offline_settings(data_dir: Path, **environ: str) -> Settings:
    return load_settings(OFFLINE_PROFILE, environ={"RAG_DATA_DIR": str(data_dir), **environ})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return offline_settings(tmp_path / "index")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 (packaged on PyPI), loaded once."""
    from rag.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(load_settings(OFFLINE_PROFILE, environ={}).embedding)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from rag.tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_models: dict[str, Path]):
    from rag.embedding import SentenceTransformerEmbedder

    settings = load_settings(
        environ={"RAG_EMBEDDING__MODEL": str(tiny_models["embedding"]), "RAG_EMBEDDING__DEVICE": "cpu"}
    )
    embedder = SentenceTransformerEmbedder(settings.embedding)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def tiny_generator(tiny_models: dict[str, Path]):
    """The tiny Qwen3 generator in-process, greedy (temperature 0), 12 tokens per answer."""
    from rag.generate import build_generator
    from rag.generate.local import LocalGenerator

    settings = load_settings(
        environ={
            "RAG_GENERATE__BACKEND": "local",
            "RAG_GENERATE__MODEL": str(tiny_models["generator"]),
            "RAG_GENERATE__DEVICE": "cpu",
            "RAG_GENERATE__TEMPERATURE": "0",
            "RAG_GENERATE__MAX_TOKENS": "12",
        }
    )
    generator = build_generator(settings.generate, embedder=None)  # type: ignore[arg-type]
    assert isinstance(generator, LocalGenerator)
    generator.warm_up()
    return generator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def run_chroma(path: Path, port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real `chroma run` on 127.0.0.1:`port` keeping its data in `path`, stopped on exit."""
    chroma = Path(sys.executable).with_name("chroma")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        try:
            wait_for_port(port, process=process)
            yield process
        finally:
            stop(process)


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real `chroma run` on 127.0.0.1, stopped at the end of the test."""
    port = free_port()
    with run_chroma(tmp_path / "chroma-server", port, tmp_path / "chroma.log"):
        yield f"http://127.0.0.1:{port}"


def stop(process: subprocess.Popen[Any], *, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`rag ...` as a user runs it: a real subprocess."""
    rag = Path(sys.executable).with_name("rag")
    return subprocess.run(
        [str(rag), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=PROJECT,
    )


@pytest.fixture(scope="session")
def corpus_index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The whole test corpus (en + zh + nasty) ingested once with the offline profile by the real
    CLI, as a user would: returns the data dir and the --json report."""
    import json

    data_dir = tmp_path_factory.mktemp("corpus-index")
    result = run_cli(
        "ingest",
        "--json",
        str(corpus),
        env=offline_env(data_dir),
        timeout=900,
    )
    assert result.returncode == 3, result.stderr  # the nasty files fail, the rest succeed
    assert "Traceback" not in result.stderr, result.stderr
    return data_dir, json.loads(result.stdout)
