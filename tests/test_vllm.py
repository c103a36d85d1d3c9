"""Our vLLM-facing code against vLLM itself: its CPU build serving tiny Qwen3 stand-ins on 127.0.0.1
(tests/support/vllm_servers.py). The reranker client with the template on either side, or missing,
or twice; the embedder under a served name that says nothing; the generator streaming with thinking
off; `rag doctor`; faults a real server can be made to have (paused, killed, started again). The
loopback fakes stay only for what a real server cannot be made to do (malformed JSON, wrong counts).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag.api import create_app
from rag.config import load_settings
from rag.conversation import standalone_line
from rag.embedding.local import SentenceTransformerEmbedder
from rag.embedding.openai_http import OpenAIEmbedder
from rag.errors import BackendTimeout, BackendUnavailable
from rag.generate.openai_http import OpenAIChatGenerator
from rag.generate.prompt import build_messages, condense_messages
from rag.pipeline import RagPipeline
from rag.rerank.local import LocalQwen3Reranker
from rag.rerank.vllm_http import VllmReranker
from rag.selfcheck import check_query_prompt, check_reranker_template
from rag.types import Passage, Turn

from .support.browser import shoot
from .support.documents import PASSAGES
from .support.loopback import serve_asgi
from .support.processes import run_cli
from .support.profiles import local_reranker_env, offline_env, offline_settings
from .support.vllm_servers import VllmServer, VllmStack

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.server]

QUERY = "When should an incident that nobody acknowledged be escalated?"
INSTRUCTION = "Find the escalation rule"


def vllm_reranker_env(server: VllmServer, **changes: str) -> dict[str, str]:
    """Settings (as environment) for our `vllm` reranker on `server`, with rerank.vllm.* changes."""
    return {
        "RAG_RERANK__BACKEND": "vllm",
        "RAG_RERANK__VLLM__URL": server.url,
        "RAG_RERANK__VLLM__MODEL": server.name,
        **{f"RAG_RERANK__VLLM__{key.upper()}": value for key, value in changes.items()},
    }


def served_reranker(server: VllmServer, **changes: str) -> VllmReranker:
    reranker = VllmReranker(load_settings(environ=vllm_reranker_env(server, **changes)).rerank)
    reranker.warm_up()
    return reranker


@pytest.fixture(scope="module")
def local(vllm: VllmStack) -> LocalQwen3Reranker:
    """Our in-process backend on the very weights vLLM serves."""
    reranker = LocalQwen3Reranker(load_settings(environ=local_reranker_env(vllm.models["reranker"])).rerank)
    reranker.warm_up()
    return reranker


def assert_same_scores(got: list[float], expected: list[float]) -> None:
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) < 1e-5
    assert list(np.argsort(got)) == list(np.argsort(expected))


class TestReranker:
    @pytest.mark.parametrize("endpoint", ["rerank", "score"])
    @pytest.mark.parametrize(("template", "server"), [("client", "reranker"), ("server", "templated_reranker")])
    def test_scores_equal_the_local_backend(
        self, vllm: VllmStack, local: LocalQwen3Reranker, endpoint: str, template: str, server: str
    ) -> None:
        remote = served_reranker(getattr(vllm, server), endpoint=endpoint, template=template)
        for instruction in (None, INSTRUCTION):
            expected = local.score(QUERY, PASSAGES, instruction=instruction)
            assert_same_scores(remote.score(QUERY, PASSAGES, instruction=instruction), expected)

    def test_served_without_a_template_the_scores_differ(self, vllm: VllmStack, local: LocalQwen3Reranker) -> None:
        """The field's most reported failure: raw texts to a Qwen3 reranker served without a template."""
        missing = served_reranker(vllm.reranker, template="server").score(QUERY, PASSAGES)
        expected = local.score(QUERY, PASSAGES)
        assert max(abs(a - b) for a, b in zip(missing, expected, strict=True)) > 1e-3
        assert "without a --chat-template" in vllm.reranker.log_text()  # and vLLM says so, once, in its log

    def test_the_template_applied_twice_differs_too(self, vllm: VllmStack, local: LocalQwen3Reranker) -> None:
        twice = served_reranker(vllm.templated_reranker, template="client").score(QUERY, PASSAGES)
        assert max(abs(a - b) for a, b in zip(twice, local.score(QUERY, PASSAGES), strict=True)) > 1e-3

    def test_the_self_check_counts_what_the_server_read(self, vllm: VllmStack, local: LocalQwen3Reranker) -> None:
        verdicts = {
            "local": check_reranker_template(local, INSTRUCTION),
            "client template, plain server": check_reranker_template(served_reranker(vllm.reranker), INSTRUCTION),
            "server template": check_reranker_template(
                served_reranker(vllm.templated_reranker, template="server"), INSTRUCTION
            ),
            "missing": check_reranker_template(served_reranker(vllm.reranker, template="server"), INSTRUCTION),
            "twice": check_reranker_template(served_reranker(vllm.templated_reranker), INSTRUCTION),
        }
        once = verdicts["local"].details["expected_tokens"]
        for case in ("local", "client template, plain server", "server template"):
            assert verdicts[case].status == "ok" and verdicts[case].details["read_tokens"] == once, case
        assert verdicts["missing"].failed and verdicts["missing"].message.startswith("template missing")
        assert verdicts["twice"].failed and verdicts["twice"].message.startswith("template applied twice")
        assert verdicts["missing"].details["read_tokens"] < once < verdicts["twice"].details["read_tokens"]

    def test_rag_doctor_names_the_template(self, vllm: VllmStack, tmp_path: Path) -> None:
        def doctor(server: VllmServer, template: str) -> tuple[int, dict]:
            env = {**offline_env(tmp_path / "data"), **vllm_reranker_env(server, template=template)}
            result = run_cli("doctor", "--json", env=env, timeout=300)
            assert "Traceback" not in result.stderr, result.stderr
            return result.returncode, {c["name"]: c for c in json.loads(result.stdout)["checks"]}

        code, checks = doctor(vllm.reranker, "server")
        assert code == 1 and checks["reranker.template"]["message"].startswith("template missing")
        for server, template in ((vllm.reranker, "client"), (vllm.templated_reranker, "server")):
            code, checks = doctor(server, template)
            assert code == 0 and checks["reranker.template"]["message"].startswith("template applied once")
            # Random weights: the canaries run and report a margin, as warnings at worst.
            assert {checks[f"reranker.canary.{lang}"]["status"] for lang in ("en", "zh")} <= {"ok", "warning"}
            assert all("margin" in checks[f"reranker.canary.{lang}"]["details"] for lang in ("en", "zh"))


class TestEmbedder:
    TEXTS = (
        "Error 809 means the firewall blocks L2TP.",
        "数据出境需要通过安全评估。",
        "Passwords have twelve characters.",
    )

    @pytest.fixture(scope="class")
    def in_process(self, vllm: VllmStack) -> SentenceTransformerEmbedder:
        environ = {"RAG_EMBEDDING__MODEL": str(vllm.models["embedding"]), "RAG_EMBEDDING__DEVICE": "cpu"}
        embedder = SentenceTransformerEmbedder(load_settings(environ=environ).embedding)
        embedder.warm_up()
        return embedder

    def served(self, vllm: VllmStack, **fields: str) -> OpenAIEmbedder:
        """The tiny Qwen3-Embedding as vLLM serves it, under the name "kb-embedder": nothing in it says Qwen3."""
        environ = {
            "RAG_EMBEDDING__BACKEND": "openai",
            "RAG_EMBEDDING__MODEL": str(vllm.models["embedding"]),
            "RAG_EMBEDDING__OPENAI__URL": f"{vllm.embedder.url}/v1",
            "RAG_EMBEDDING__OPENAI__SERVED_MODEL": vllm.embedder.name,
            **{f"RAG_EMBEDDING__{key.upper()}": value for key, value in fields.items()},
        }
        return OpenAIEmbedder(load_settings(environ=environ).embedding)

    def test_documents_and_queries_equal_sentence_transformers(self, vllm: VllmStack, in_process) -> None:
        served = self.served(vllm)
        cosines = np.sum(served.embed_documents(self.TEXTS) * in_process.embed_documents(self.TEXTS), axis=1)
        assert cosines.min() >= 0.9999, cosines
        assert served.query_prompt == in_process.query_prompt != ""
        for query in ("What does error 809 mean?", "数据出境需要什么？"):
            assert float(served.embed_query(query) @ in_process.embed_query(query)) >= 0.9999

    def test_the_query_format_is_a_setting(self, vllm: VllmStack, in_process) -> None:
        query = "What does error 809 mean?"
        plain = self.served(vllm, query_format="plain")
        assert plain.query_prompt == ""
        assert float(plain.embed_query(query) @ in_process.embed_documents([query])[0]) >= 0.9999
        assert float(plain.embed_query(query) @ in_process.embed_query(query)) < 0.999

    def test_the_self_check_counts_the_prompt_once(self, vllm: VllmStack) -> None:
        check = check_query_prompt(self.served(vllm))
        assert check.status == "ok", check.message
        # What vLLM read: prompt + query, and the <|endoftext|> the Qwen3-Embedding tokenizer appends.
        assert check.details["read_tokens"] == check.details["counts"]["once"] + 1


class TestGenerator:
    PASSAGES = (
        Passage(
            "c1", "Escalate after 15 minutes without an acknowledgement.", 1, 0.9, metadata={"file_name": "ir.pdf"}
        ),
    )

    def generator(self, vllm: VllmStack, **fields: str) -> OpenAIChatGenerator:
        environ = {
            "RAG_GENERATE__BACKEND": "openai",
            "RAG_GENERATE__OPENAI__URL": f"{vllm.generator.url}/v1",
            "RAG_GENERATE__OPENAI__MODEL": vllm.generator.name,
            "RAG_GENERATE__TEMPERATURE": "0",
            **{f"RAG_GENERATE__{key.upper()}": value for key, value in fields.items()},
        }
        generator = OpenAIChatGenerator(load_settings(environ=environ).generate)
        generator.warm_up()
        return generator

    def test_streams_an_answer_with_thinking_off(self, vllm: VllmStack) -> None:
        generator = self.generator(vllm, max_tokens="8")
        pieces = list(generator.stream(QUERY, self.PASSAGES))
        assert len(pieces) >= 1 and all(isinstance(p, str) for p in pieces)
        # What the server renders from the very payload we send: Qwen3's template with thinking off.
        from transformers import AutoTokenizer

        payload = generator.payload(build_messages(QUERY, self.PASSAGES))
        assert payload["chat_template_kwargs"] == {"enable_thinking": False}
        tokenizer = AutoTokenizer.from_pretrained(str(vllm.models["generator"]))
        messages = build_messages(QUERY, self.PASSAGES)

        def rendered_by_vllm(**kwargs: object) -> list[int]:
            body = {"model": vllm.generator.name, "messages": payload["messages"], "add_generation_prompt": True}
            answer = httpx.post(f"{vllm.generator.url}/tokenize", json={**body, **kwargs}, timeout=60)
            return list(answer.json()["tokens"])

        off = tokenizer.apply_chat_template(messages, add_generation_prompt=True, enable_thinking=False, tokenize=False)
        assert off.endswith("<think>\n\n</think>\n\n")
        off_ids = tokenizer(off, add_special_tokens=False)["input_ids"]
        assert rendered_by_vllm(chat_template_kwargs=payload["chat_template_kwargs"]) == off_ids
        assert rendered_by_vllm(chat_template_kwargs={"enable_thinking": True}) != off_ids  # the switch reaches it

    def test_finish_reasons_stop_and_length(self, vllm: VllmStack) -> None:
        """Our payload, as vLLM finishes it: cut by max_tokens (length), or the model's end (stop)."""
        generator = self.generator(vllm, max_tokens="3")
        payload = {**generator.payload(build_messages(QUERY, self.PASSAGES)), "stream": False}
        url = f"{vllm.generator.url}/v1/chat/completions"
        cut = httpx.post(url, json=payload, timeout=60).json()
        assert cut["choices"][0]["finish_reason"] == "length" and cut["usage"]["completion_tokens"] == 3
        ended = httpx.post(url, json={**payload, "logit_bias": {"151645": 100}}, timeout=60).json()  # <|im_end|>
        assert ended["choices"][0]["finish_reason"] == "stop"
        # Our client reads both: a streamed answer cut at max_tokens, and one the model ended at once.
        assert len("".join(generator.stream(QUERY, self.PASSAGES))) > 0

    def test_condenses_a_follow_up_into_the_query_searched(self, vllm: VllmStack, index: Path, minilm) -> None:
        """conversation.rewrite auto + an LLM generator: the follow-up is searched as the model
        condensed it (the tiny model's words are random; what is checked is that its reply, to our
        condense prompt, is what gets searched)."""
        generator = self.generator(vllm)
        settings = offline_settings(index, RAG_RECALL__MODE="hybrid")
        pipeline = RagPipeline(settings, embedder=minilm, generator=generator)
        assert pipeline.rewriter.method == "llm"
        history = [Turn("user", "How do I fix VPN error 809?"), Turn("assistant", "Open UDP 500 and 4500.")]
        follow_up = "What if it fails on every network?"
        limit = settings.conversation.condense_max_tokens
        payload = generator.payload(condense_messages(follow_up, history), max_tokens=limit, temperature=0.0)
        reply = httpx.post(
            f"{vllm.generator.url}/v1/chat/completions", json={**payload, "stream": False}, timeout=120
        ).json()["choices"][0]["message"]["content"]
        answer = pipeline.ask(follow_up, history=history)
        assert "condense" in answer.timings and answer.question == follow_up
        if standalone_line(reply):
            assert answer.query == standalone_line(reply)[-settings.api.max_question_chars :]
            assert "condense" not in answer.degraded
        else:  # the model said nothing usable: the rule, and the answer says so
            assert answer.degraded[:1] == ("condense",) and answer.query.endswith(follow_up)
        standalone = pipeline.ask("How do I reset a VPN token?", history=history)
        assert standalone.query == "How do I reset a VPN token?" and "condense" not in standalone.timings

    def test_a_client_that_goes_away_mid_stream(self, vllm: VllmStack) -> None:
        generator = self.generator(vllm, max_tokens="1500")
        stream = generator.stream(QUERY, self.PASSAGES)
        next(stream)
        stream.close()  # the reader left: the response is closed and vLLM aborts the request
        deadline = time.monotonic() + 60
        while running_requests(vllm.generator) > 0:
            assert time.monotonic() < deadline, "vLLM kept generating for a client that had gone"
            time.sleep(0.5)
        assert "".join(self.generator(vllm, max_tokens="4").stream(QUERY, self.PASSAGES))


def running_requests(server: VllmServer) -> float:
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.findall(r"^vllm:num_requests_running\{[^}]*\} ([0-9.]+)$", metrics, re.M)
    assert found, "vLLM's metrics name no running-requests gauge"
    return sum(float(value) for value in found)


def test_the_web_page_shows_a_failed_self_check(vllm: VllmStack, index: Path, minilm, browser) -> None:
    """rag serve against a reranker served without a template, configured as if it had one: every
    request succeeds, every score is near random, and the page says so on every tab."""
    from playwright.sync_api import expect

    settings = offline_settings(index, **vllm_reranker_env(vllm.reranker, template="server"))
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        deadline = time.monotonic() + 60
        while (ready := httpx.get(f"{url}/readyz", timeout=30)).json()["selfcheck"] is None:
            assert time.monotonic() < deadline, "the self-checks never finished"
            time.sleep(0.5)
        assert ready.status_code == 503 and not ready.json()["ready"]
        failed = [c for c in ready.json()["selfcheck"] if c["status"] == "failed"]
        assert [c["name"] for c in failed] == ["reranker.template"]
        assert 'rag_selfcheck_ok{check="reranker.template"} 0.0' in httpx.get(f"{url}/metrics").text
        page = browser.new_page()  # type: ignore[attr-defined]
        try:
            page.goto(url)
            expect(page.locator("#health-banner")).to_contain_text("template missing: scores will be near random")
            shoot(page, "selfcheck-banner")
        finally:
            page.close()


class TestFaults:
    """Last in the module: the reranker server is paused, killed and started again."""

    def test_a_paused_server_times_out_within_its_deadline_then_answers(
        self, vllm: VllmStack, local: LocalQwen3Reranker
    ) -> None:
        remote = served_reranker(vllm.reranker, timeout_s="2", retries="1")
        vllm.reranker.pause()
        try:
            started = time.monotonic()
            with pytest.raises(BackendTimeout):
                remote.score(QUERY, PASSAGES)
            assert time.monotonic() - started < 3.5
        finally:
            vllm.reranker.resume()
        assert_same_scores(served_reranker(vllm.reranker).score(QUERY, PASSAGES), local.score(QUERY, PASSAGES))

    def test_a_killed_server_is_unreachable_then_whole_once_started_again(
        self, vllm: VllmStack, local: LocalQwen3Reranker, index: Path, minilm
    ) -> None:
        settings = offline_settings(index, **vllm_reranker_env(vllm.reranker, timeout_s="3"))
        pipeline = RagPipeline(settings, embedder=minilm)
        vllm.reranker.kill()
        with pytest.raises(BackendUnavailable):
            served_reranker(vllm.reranker).score(QUERY, PASSAGES)
        degraded = pipeline.search("What does error 809 mean?")
        assert degraded.degraded == ("rerank",) and degraded.passages
        vllm.reranker.start()
        vllm.reranker.wait_ready()
        assert_same_scores(served_reranker(vllm.reranker).score(QUERY, PASSAGES), local.score(QUERY, PASSAGES))
        whole = pipeline.search("What does error 809 mean?")
        assert whole.degraded == () and whole.reranked > 0
