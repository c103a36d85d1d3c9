"""Rerankers: the Qwen3 template byte for byte, and every backend on the tiny Qwen3 stand-in."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import RerankSettings, load_settings
from rag.qwen3 import DEFAULT_TASK, qwen3_tokenizer_dir
from rag.rerank import Reranker, _template, build_reranker
from rag.selfcheck import check_reranker_template, count_tokens, template_counts

from .support.documents import PASSAGES
from .support.profiles import local_reranker_env

# The official format (Qwen3-Reranker model card / ../shared/DESIGN.md), written out literally.
OFFICIAL_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
OFFICIAL_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


class TestTemplate:
    def test_rendered_pair_equals_the_official_format(self) -> None:
        rendered = _template.render("what is a precursor?", "A precursor is a sign.", "Find IR definitions")
        assert rendered == (
            OFFICIAL_PREFIX
            + "<Instruct>: Find IR definitions\n<Query>: what is a precursor?\n<Document>: A precursor is a sign."
            + OFFICIAL_SUFFIX
        )
        assert _template.PREFIX == OFFICIAL_PREFIX and _template.SUFFIX == OFFICIAL_SUFFIX
        default = _template.render("q", "d")
        assert "<Instruct>: Given a web search query, retrieve relevant passages that answer the query\n" in default

    def test_yes_no_token_ids_of_the_real_qwen3_tokenizer(self) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir()))
        assert tokenizer.convert_tokens_to_ids("yes") == 9693
        assert tokenizer.convert_tokens_to_ids("no") == 2152
        assert tokenizer.convert_tokens_to_ids("<think>") == 151667

    def test_qwen3_chat_template_without_thinking_ends_with_the_suffix(self) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(qwen3_tokenizer_dir()))
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True, enable_thinking=False
        )
        assert text.endswith(OFFICIAL_SUFFIX)

    def test_pair_chat_template_renders_the_same_bytes(self, tiny_models: dict[str, Path]) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(tiny_models["reranker"]))
        messages = [
            {"role": "system", "content": "Judge by PRC law"},
            {"role": "query", "content": "数据出境需要什么？"},
            {"role": "document", "content": "第三十六条 ……"},
        ]
        text = tokenizer.apply_chat_template(messages, chat_template=_template.CHAT_TEMPLATE, tokenize=False)
        assert text == _template.render("数据出境需要什么？", "第三十六条 ……", "Judge by PRC law")
        without_instruction = tokenizer.apply_chat_template(
            messages[1:], chat_template=_template.CHAT_TEMPLATE, tokenize=False
        )
        assert without_instruction == _template.render("数据出境需要什么？", "第三十六条 ……")
        # vLLM passes a request's instruction as a template variable (chat_template_kwargs); it wins.
        from_request = tokenizer.apply_chat_template(
            messages, chat_template=_template.CHAT_TEMPLATE, tokenize=False, instruction="Find IT fixes"
        )
        assert from_request == _template.render("数据出境需要什么？", "第三十六条 ……", "Find IT fixes")

    def test_the_shipped_template_file_defaults_to_the_one_default_task(self) -> None:
        assert f"'{DEFAULT_TASK}'" in _template.TEMPLATE_FILE.read_text(encoding="utf-8")


def tiny_settings(tiny_models: dict[str, Path], **changes: object) -> RerankSettings:
    base = load_settings(environ=local_reranker_env(tiny_models["reranker"])).rerank
    return base.model_copy(update=changes)


@pytest.fixture(scope="module")
def local(tiny_models: dict[str, Path]):
    reranker = build_reranker(tiny_settings(tiny_models, batch_tokens=400))
    reranker.warm_up()
    return reranker


class TestLocalQwen3:
    def test_batched_equals_one_at_a_time(self, local) -> None:
        sequences = [local.encode_pair("when to escalate?", p) for p in PASSAGES]
        assert len(local.batches(sequences)) >= 2  # the small budget forces several batches
        batched = local.score("when to escalate?", PASSAGES)
        single = [local.score("when to escalate?", [p])[0] for p in PASSAGES]
        assert batched == pytest.approx(single, abs=1e-4)
        assert all(0.0 <= s <= 1.0 for s in batched)

    def test_batches_are_length_sorted_within_the_token_budget(self, local) -> None:
        sequences = [local.encode_pair("q", p) for p in PASSAGES * 4]
        groups = local.batches(sequences)
        assert sorted(i for g in groups for i in g) == list(range(len(sequences)))
        for group in groups:
            lengths = [len(sequences[i]) for i in group]
            assert lengths == sorted(lengths, reverse=True)
            assert len(group) == 1 or lengths[0] * len(group) <= 400
        # Padding stays small: the padded total is close to the real total.
        padded = sum(len(sequences[g[0]]) * len(g) for g in groups)
        assert padded <= 1.25 * sum(len(s) for s in sequences)

    def test_truncation_keeps_prefix_and_suffix(self, tiny_models: dict[str, Path]) -> None:
        reranker = build_reranker(tiny_settings(tiny_models, max_length=128))
        reranker.warm_up()
        ids = reranker.encode_pair("query", "word " * 1000, "instr")
        tokenizer = reranker._tokenizer
        prefix = tokenizer.encode(OFFICIAL_PREFIX, add_special_tokens=False)
        suffix = tokenizer.encode(OFFICIAL_SUFFIX, add_special_tokens=False)
        assert len(ids) == 128
        assert ids[: len(prefix)] == prefix and ids[-len(suffix) :] == suffix
        assert tokenizer.decode(ids[len(prefix) :]).startswith("<Instruct>: instr\n<Query>: query\n<Document>: word")
        short = reranker.encode_pair("query", "short", "instr")
        assert tokenizer.decode(short) == _template.render("query", "short", "instr")

    def test_instruction_changes_scores(self, local) -> None:
        plain = local.score("q", PASSAGES[:2])
        legal = local.score("q", PASSAGES[:2], instruction="Judge by PRC law")
        assert plain != pytest.approx(legal, abs=1e-6)

    def test_agrees_with_sentence_transformers_cross_encoder(self, local, tiny_models: dict[str, Path]) -> None:
        cross = build_reranker(tiny_settings(tiny_models, backend="cross-encoder"))
        cross.warm_up()
        for instruction in (None, "Find the escalation rule"):
            expected = local.score("when to escalate?", PASSAGES, instruction=instruction)
            got = cross.score("when to escalate?", PASSAGES, instruction=instruction)
            assert got == pytest.approx(expected, abs=1e-4)


class TestContract:
    """What every backend promises: one score per passage, in order, in [0, 1], empty in -> empty out."""

    @pytest.fixture(params=["local", "cross-encoder", "none"])
    def reranker(self, request: pytest.FixtureRequest, tiny_models: dict[str, Path]) -> Reranker:
        reranker = build_reranker(tiny_settings(tiny_models, backend=request.param))
        reranker.warm_up()
        return reranker

    def test_contract(self, reranker: Reranker) -> None:
        assert isinstance(reranker, Reranker)
        assert reranker.score("q", []) == []
        scores = reranker.score("q", PASSAGES)
        assert len(scores) == len(PASSAGES) and all(0.0 <= s <= 1.0 for s in scores)
        assert reranker.score("q", PASSAGES[1:3]) == pytest.approx(scores[1:3], abs=1e-4) or reranker.name == "none"

    def test_none_keeps_recall_order(self) -> None:
        scores = build_reranker(RerankSettings(backend="none")).score("q", PASSAGES)
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)


class TestSelfCheck:
    def test_the_counts_tell_once_missing_and_twice_apart(self) -> None:
        counts = template_counts("what is error 809?", "Error 809 means the firewall blocks L2TP.", "Find IT fixes")
        assert counts["missing"] < counts["once"] < counts["twice"]
        assert counts["once"] == count_tokens(
            _template.render("what is error 809?", "Error 809 means the firewall blocks L2TP.", "Find IT fixes")
        )

    def test_the_local_backend_reads_the_template_once(self, local) -> None:
        check = check_reranker_template(local, "Find IT fixes")
        assert check.status == "ok" and check.message.startswith("template applied once")
        assert check.details["read_tokens"] == check.details["expected_tokens"]

    def test_a_reranker_that_cannot_say_what_it_read_is_a_warning(self) -> None:
        check = check_reranker_template(build_reranker(RerankSettings(backend="none")), "x")
        assert check.status == "warning" and "cannot tell" in check.message
