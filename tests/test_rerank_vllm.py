"""The vLLM reranker client against a real HTTP server on 127.0.0.1 speaking vLLM's JSON."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.config import VllmRerankSettings, load_settings
from rag.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from rag.rerank import build_reranker
from rag.rerank.vllm_http import VllmReranker

from .support.documents import PASSAGES
from .support.fake_vllm import FakeVllm
from .support.loopback import serve
from .support.processes import free_port
from .support.profiles import local_reranker_env


@pytest.fixture(scope="module")
def local(tiny_models: dict[str, Path]):
    settings = load_settings(environ=local_reranker_env(tiny_models["reranker"]))
    reranker = build_reranker(settings.rerank)
    reranker.warm_up()
    return reranker


@pytest.fixture
def fake(local) -> FakeVllm:
    return FakeVllm.around(local)


def client(local, url: str, **vllm: object) -> VllmReranker:
    settings = local.settings.model_copy(
        update={"backend": "vllm", "vllm": VllmRerankSettings(url=url, **vllm)}  # type: ignore[arg-type]
    )
    reranker = build_reranker(settings)
    assert isinstance(reranker, VllmReranker)
    return reranker


class TestAgainstAServer:
    @pytest.mark.parametrize("endpoint", ["rerank", "score"])
    def test_scores_and_order_equal_the_local_backend(self, local, fake: FakeVllm, endpoint: str) -> None:
        with serve(fake) as url:
            remote = client(local, url, endpoint=endpoint)
            for instruction in (None, "Find the escalation rule"):
                expected = local.score("when to escalate?", PASSAGES, instruction=instruction)
                got = remote.score("when to escalate?", PASSAGES, instruction=instruction)
                assert got == pytest.approx(expected, abs=1e-4)
                assert sorted(range(5), key=lambda i: -got[i]) == sorted(range(5), key=lambda i: -expected[i])
        request = fake.requests[0]
        texts = request["documents"] if endpoint == "rerank" else request["text_2"]
        assert texts[0].startswith("<Document>: After waiting") and texts[0].endswith("</think>\n\n")

    def test_server_template_mode_sends_raw_texts(self, local, fake: FakeVllm) -> None:
        with serve(fake) as url:
            client(local, url, template="server").score("raw query", PASSAGES[:2])
        assert fake.requests[0]["query"] == "raw query" and fake.requests[0]["documents"] == PASSAGES[:2]

    def test_long_lists_are_split_and_capped(self, local, fake: FakeVllm) -> None:
        passages = PASSAGES * 5  # 25 documents
        fake.delay_s = 0.1
        with serve(fake) as url:
            got = client(local, url, max_documents_per_request=4, concurrency=2).score("q", passages)
        assert len(fake.requests) == 7 and all(len(r["documents"]) <= 4 for r in fake.requests)
        assert fake.max_in_flight == 2
        assert got == pytest.approx(local.score("q", passages), abs=1e-4)

    def test_retries_5xx_then_succeeds(self, local, fake: FakeVllm) -> None:
        fake.fault, fake.fail_times = "500", 2
        with serve(fake) as url:
            got = client(local, url, retries=2).score("q", PASSAGES[:2])
        assert len(fake.requests) == 3 and got == pytest.approx(local.score("q", PASSAGES[:2]), abs=1e-4)


class TestFailures:
    def test_server_down(self, local) -> None:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            client(local, f"http://127.0.0.1:{free_port()}", timeout_s=2, retries=2).score("q", PASSAGES)
        assert time.monotonic() - started < 2 + 1

    def test_slow_server_times_out_within_the_budget(self, local, fake: FakeVllm) -> None:
        fake.delay_s = 3.0
        with serve(fake) as url:
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                client(local, url, timeout_s=1.0, retries=3).score("q", PASSAGES)
            assert time.monotonic() - started < 1.0 + 1
            assert len(fake.requests) <= 4

    def test_persistent_500(self, local, fake: FakeVllm) -> None:
        fake.fault, fake.fail_times = "500", 100
        with serve(fake) as url, pytest.raises(BackendUnavailable, match="HTTP 500"):
            client(local, url, retries=2).score("q", PASSAGES)
        assert len(fake.requests) == 3

    @pytest.mark.parametrize(("fault", "message"), [("malformed", "malformed"), ("wrong-count", "4 scores for 5")])
    def test_bad_responses_are_not_retried(self, local, fake: FakeVllm, fault: str, message: str) -> None:
        fake.fault = fault
        with serve(fake) as url, pytest.raises(BadBackendResponse, match=message):
            client(local, url, retries=3).score("q", PASSAGES)
        assert len(fake.requests) == 1
