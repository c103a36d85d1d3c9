"""The query side on a real index: recall, rerank backends, filters, and the degraded path."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.backends import CPU_HEAVY_PARAMETERS
from rag.config import VllmRerankSettings, load_settings
from rag.errors import BackendUnavailable, ConfigError
from rag.generate.prompt import NOT_FOUND_EN
from rag.pipeline import RagPipeline, SearchOptions
from rag.recall import chroma_where
from rag.rerank import build_reranker
from rag.rerank._budget import Throughput
from rag.types import Answer

from .support.fake_openai import FakeOpenAI
from .support.fake_vllm import FakeVllm
from .support.loopback import serve
from .support.processes import free_port, run_cli
from .support.profiles import local_reranker_env, offline_env, offline_settings
from .support.tiny_models import build_causal_lm


def pipeline(index: Path, minilm, reranker=None, **environ: str) -> RagPipeline:
    settings = offline_settings(index, **environ)
    return RagPipeline(settings, embedder=minilm, reranker=reranker)


@contextmanager
def llm_pipeline(index: Path, minilm, fake: FakeOpenAI, **environ: str) -> Iterator[RagPipeline]:
    """The offline pipeline answering through `fake`, an OpenAI-compatible server on 127.0.0.1."""
    with serve(fake) as url:
        yield pipeline(index, minilm, RAG_GENERATE__BACKEND="openai", RAG_GENERATE__OPENAI__URL=f"{url}/v1", **environ)


class TestRecallOnly:
    def test_offline_profile_keeps_recall_order(self, index: Path, minilm) -> None:
        result = pipeline(index, minilm).search("what does error 809 mean?")
        assert result.passages[0].file_name == "runbook.md" and "809" in result.passages[0].text
        assert [p.recall_rank for p in result.passages] == sorted(p.recall_rank for p in result.passages)
        assert all(p.rerank_score is None for p in result.passages)
        assert set(result.timings) == {"embed", "recall"} and result.degraded == ()

    def test_filters_and_top_n(self, index: Path, minilm) -> None:
        only_faq = pipeline(index, minilm).search(
            "error 809", options=SearchOptions(filters={"file": ["faq.txt"]}, top_n=2)
        )
        assert {p.file_name for p in only_faq.passages} == {"faq.txt"}
        assert chroma_where({"file": "a.pdf", "file_type": "pdf"}) == {
            "$and": [{"file_name": "a.pdf"}, {"file_type": "pdf"}]
        }
        with pytest.raises(ConfigError, match="unknown filter"):
            chroma_where({"colour": "red"})


class TestWithTheQwen3Reranker:
    @pytest.fixture(scope="class")
    def tiny_reranker(self, tiny_models: dict[str, Path]):
        settings = load_settings(environ=local_reranker_env(tiny_models["reranker"]))
        reranker = build_reranker(settings.rerank)
        reranker.warm_up()
        return reranker

    def test_reranked_passages_are_sorted_by_score_and_keep_recall_ranks(
        self, index: Path, minilm, tiny_reranker
    ) -> None:
        result = pipeline(index, minilm, tiny_reranker).search("error 809", options=SearchOptions(top_n=3))
        scores = [p.rerank_score for p in result.passages]
        assert len(scores) == 3 and all(s is not None and 0 <= s <= 1 for s in scores)
        assert scores == sorted(scores, reverse=True)
        assert {"embed", "recall", "rerank"} <= set(result.timings)
        every = pipeline(index, minilm, tiny_reranker).search("error 809", options=SearchOptions(top_n=100))
        assert sorted(p.recall_rank for p in every.passages) == list(range(1, len(every.passages) + 1))
        threshold = every.passages[1].rerank_score
        kept = pipeline(index, minilm, tiny_reranker).search(
            "error 809", options=SearchOptions(top_n=100, min_score=threshold)
        )
        assert len(kept.passages) == 2

    @pytest.mark.slow
    def test_a_gpu_sized_reranker_on_the_cpu_reranks_fewer_shorter_candidates(
        self, index: Path, minilm, tmp_path: Path
    ) -> None:
        # One layer, but Qwen3's 151k x 1024 embedding table: over the 150M-parameter line, cheap to run.
        shape = {"layers": 1, "hidden": 1024, "heads": 8, "kv_heads": 4, "intermediate": 1024, "head_dim": 128}
        folder = build_causal_lm(tmp_path / "wide-reranker", shape=shape)
        environ = local_reranker_env(folder)
        wide = build_reranker(load_settings(environ=environ).rerank)
        wide.warm_up()
        assert wide.parameter_count > CPU_HEAVY_PARAMETERS and wide.max_length == 1024  # cpu_max_length
        # The budget is time at the speed measured on the reranker (at warm-up, then on each call):
        # a budget nothing fits in leaves the first candidate, a generous one all of them.
        rag = pipeline(index, minilm, wide, **environ, RAG_RERANK__CPU_TIME_BUDGET_S="0.000001")
        rag.warm_up(generator=False)
        assert rag.rerank_speed.rate is not None and rag.rerank_speed.rate > 0
        result = rag.search("error 809", options=SearchOptions(top_n=10))
        assert len(result.passages) == 1 and {p.recall_rank for p in result.passages} == {1}
        assert result.degraded == () and any("rerank on CPU: 1 of" in note for note in result.notes)
        roomy = pipeline(index, minilm, wide, **environ, RAG_RERANK__CPU_TIME_BUDGET_S="3600")
        roomy.warm_up(generator=False)
        everything = roomy.search("error 809", options=SearchOptions(top_n=10))
        assert everything.notes == () and everything.reranked == len(everything.passages) > 1

    def test_unreachable_reranker_degrades_visibly_within_its_timeout(self, index: Path, minilm) -> None:
        settings = offline_settings(index).rerank.model_copy(
            update={"backend": "vllm", "vllm": VllmRerankSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=1)}
        )
        down = build_reranker(settings)
        started = time.monotonic()
        result = pipeline(index, minilm, down).search("error 809")
        assert time.monotonic() - started < 1 + 1
        assert result.degraded == ("rerank",) and any("rerank failed" in n for n in result.notes)
        assert [p.recall_rank for p in result.passages] == [1, 2, 3, 4, 5][: len(result.passages)]
        strict = pipeline(index, minilm, down, RAG_RERANK__ON_FAILURE="fail")
        with pytest.raises(BackendUnavailable):
            strict.search("error 809")


class TestAsk:
    def test_offline_answer_quotes_and_cites_the_source(self, index: Path, minilm) -> None:
        answer = pipeline(index, minilm).ask("What does error 809 mean?")
        assert answer.found and answer.generator == "extractive" and answer.degraded == ()
        assert answer.text.startswith("Error 809 means the firewall blocks L2TP.")
        cited = [c for c in answer.citations if c.cited]
        assert cited[0].passage.file_name == "runbook.md" and cited[0].snippet in answer.text
        assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
        assert set(answer.timings) == {"embed", "recall", "generate"}

    def test_under_the_floor_is_not_found_without_calling_the_llm(self, index, minilm, tiny_generator) -> None:
        fake = FakeOpenAI.around(tiny_generator)
        with llm_pipeline(index, minilm, fake, RAG_GENERATE__MIN_RECALL_SCORE="0.95") as rag:
            answer = rag.ask("How many weeks of parental leave do I get?")
        assert not answer.found and answer.text == NOT_FOUND_EN and answer.citations == ()
        assert fake.requests == [] and "generate" not in answer.timings
        assert any("min_recall_score" in note for note in answer.notes)

    def test_llm_answer_streams_then_the_answer_object(self, index, minilm, tiny_generator) -> None:
        fake = FakeOpenAI.around(tiny_generator)
        with llm_pipeline(index, minilm, fake, RAG_GENERATE__MAX_TOKENS="12", RAG_GENERATE__TEMPERATURE="0") as rag:
            events = list(rag.ask_stream("What does error 809 mean?", options=SearchOptions(top_n=2)))
        *pieces, answer = events
        assert isinstance(answer, Answer) and all(isinstance(p, str) for p in pieces) and len(pieces) > 1
        assert answer.text == "".join(pieces).strip() and answer.generator == "openai"
        prompt = fake.requests[0]["messages"][1]["content"]
        assert '<passage n="1" file="runbook.md"' in prompt and "Error 809 means" in prompt
        assert prompt.count("<passage n=") == 2 and {"embed", "recall", "generate"} <= set(answer.timings)

    def test_generator_down_answers_extractively_and_says_so(self, index: Path, minilm) -> None:
        down = {"RAG_GENERATE__BACKEND": "openai", "RAG_GENERATE__OPENAI__URL": f"http://127.0.0.1:{free_port()}/v1"}
        answer = pipeline(index, minilm, **down).ask("What does error 809 mean?")
        assert answer.degraded == ("generate",) and answer.generator == "extractive" and answer.found
        assert "Error 809 means the firewall blocks L2TP" in answer.text
        assert any("generator failed" in note for note in answer.notes)
        with pytest.raises(BackendUnavailable):
            pipeline(index, minilm, **down, RAG_GENERATE__ON_FAILURE="fail").ask("What does error 809 mean?")

    def test_generator_cut_off_mid_answer_keeps_what_came_and_says_so(self, index, minilm, tiny_generator) -> None:
        fake = FakeOpenAI.around(tiny_generator)
        fake.fault, fake.script = "cut", "Error 809 means a blocked port [1]."  # cut after two 3-character pieces
        with llm_pipeline(index, minilm, fake) as rag:
            answer = rag.ask("What does error 809 mean?")
            assert answer.degraded == ("generate",) and answer.generator == "openai" and answer.text == "Error"
            assert any("stopped mid-answer" in note for note in answer.notes)
            # Only blank space before the cut: the reader has nothing, so the answer is extractive.
            fake.script = "  \n\n  Error 809"
            blank = rag.ask("What does error 809 mean?")
        assert blank.degraded == ("generate",) and blank.generator == "extractive" and "809" in blank.text
        assert any("answered extractively" in note for note in blank.notes)

    def test_rerank_floor_and_collection_instruction(self, index: Path, minilm, tiny_models) -> None:
        settings = load_settings(environ=local_reranker_env(tiny_models["reranker"]))
        tiny = build_reranker(settings.rerank)
        tiny.warm_up()
        fake = FakeVllm.around(tiny)
        with serve(fake) as url:
            served = build_reranker(
                settings.rerank.model_copy(update={"backend": "vllm", "vllm": VllmRerankSettings(url=url)})
            )
            rag = pipeline(index, minilm, served, RAG_GENERATE__MIN_RERANK_SCORE="1.0")
            rag.knowledge_base(None).set_instruction("Find VPN fixes for the helpdesk")
            try:
                refused = rag.ask("error 809")
                rag._kbs.clear()  # reopen: the instruction was changed under the cached handle
                own = rag.search("error 809", options=SearchOptions(instruction="Per-request task"))
            finally:
                rag.knowledge_base(None).set_instruction(None)
        assert not refused.found and any("min_rerank_score" in note for note in refused.notes)
        assert "<Instruct>: Find VPN fixes for the helpdesk\n" in fake.requests[0]["query"]
        assert "<Instruct>: Per-request task\n" in fake.requests[-1]["query"] and own.passages


@pytest.mark.slow
class TestCli:
    def test_search_json(self, index: Path) -> None:
        result = run_cli(
            "search",
            "how long must a password be",
            "--json",
            "--top-n",
            "2",
            env=offline_env(index),
        )
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["passages"][0]["file"] == "policy.md" and len(body["passages"]) == 2
        assert body["passages"][0]["recall_rank"] == 1 and body["degraded"] == []

    def test_ask_json_and_stream(self, index: Path) -> None:
        env = offline_env(index)
        streamed = run_cli("ask", "What does error 809 mean?", "--stream", "--json", env=env)
        assert streamed.returncode == 0, streamed.stderr
        lines = [json.loads(line) for line in streamed.stdout.splitlines()]
        body = lines[-1]["answer"]
        assert "".join(line["delta"] for line in lines[:-1]) == body["answer"]
        assert body["found"] and body["answer"].startswith("Error 809 means") and body["generator"] == "extractive"
        assert body["citations"][0]["file"] == "runbook.md" and body["citations"][0]["cited"] is True
        plain = run_cli("ask", "What does error 809 mean?", "--mode", "dense", env=env)
        assert plain.stdout.startswith("Error 809 means") and "*[1] runbook.md" in plain.stdout

    def test_rerank_command_with_the_tiny_qwen3(self, tiny_models: dict[str, Path], tmp_path: Path) -> None:
        candidates = tmp_path / "docs.txt"
        candidates.write_text("第一条 数据安全\nVPN error 809 means a blocked port\n\n")
        result = run_cli(
            "rerank",
            "-q",
            "error 809",
            "--doc",
            "Printers jam",
            "--docs-file",
            str(candidates),
            "--json",
            "--instruction",
            "Find IT fixes",
            env=local_reranker_env(tiny_models["reranker"]),
        )
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        assert body["instruction"] == "Find IT fixes" and body["reranker"] == "local"
        assert sorted(r["index"] for r in body["results"]) == [0, 1, 2]
        scores = [r["score"] for r in body["results"]]
        assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_the_rerank_budget_counts_what_fits_at_the_measured_speed() -> None:
    speed = Throughput()
    assert speed.fits(["a" * 100] * 5, 1.0) == 5  # nothing measured yet: no cut
    speed.record(1000, 1.0)
    assert speed.rate == 1000 and speed.fits(["a" * 300] * 5, 1.0) == 3 and speed.fits(["a" * 5000], 1.0) == 1
    speed.record(3000, 1.0)  # a weighted mean: one fast call moves it, it does not replace it
    assert 1000 < (speed.rate or 0) < 3000


def test_a_time_budget_with_an_unreachable_reranker_still_starts_and_degrades(index: Path, minilm) -> None:
    rag = pipeline(
        index,
        minilm,
        RAG_RERANK__BACKEND="vllm",
        RAG_RERANK__VLLM__URL=f"http://127.0.0.1:{free_port()}",
        RAG_RERANK__VLLM__TIMEOUT_S="1",
        RAG_RERANK__TIME_BUDGET_S="5",
    )
    rag.warm_up(generator=False)  # the speed cannot be measured: start anyway
    assert rag.rerank_speed.rate is None
    result = rag.search("what does error 809 mean?")
    assert result.degraded == ("rerank",) and result.passages
