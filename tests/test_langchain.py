"""The LangChain adapters on a real index and the tiny Qwen3 reranker."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda
from langchain_tests.integration_tests import RetrieversIntegrationTests

from rag.config import load_settings
from rag.langchain import KnowledgeBaseRetriever, RerankCompressor
from rag.pipeline import RagPipeline
from rag.rerank import build_reranker

from .support.profiles import local_reranker_env, offline_settings


def test_retriever_returns_cited_documents_in_a_chain(index: Path, minilm) -> None:
    retriever = KnowledgeBaseRetriever(pipeline=RagPipeline(offline_settings(index), embedder=minilm), top_n=2)
    docs = retriever.invoke("what does error 809 mean?")
    assert len(docs) == 2 and docs[0].metadata["file"] == "runbook.md" and "809" in docs[0].page_content
    assert docs[0].metadata["recall_rank"] == 1 and docs[0].id == docs[0].metadata["chunk_id"]
    chain = retriever | RunnableLambda(lambda ds: [d.metadata["file"] for d in ds])
    assert chain.invoke("price per seat")[0] == "faq.txt"


def test_compressor_reorders_by_the_rerankers_scores(tiny_models: dict[str, Path]) -> None:
    settings = load_settings(environ=local_reranker_env(tiny_models["reranker"]))
    reranker = build_reranker(settings.rerank)
    reranker.warm_up()
    texts = ["Printers jam in winter.", "Error 809: the firewall blocks L2TP.", "第一条 数据安全", "Seats cost 30 EUR."]
    documents = [Document(page_content=t, metadata={"source": f"s{i}"}) for i, t in enumerate(texts)]
    compressed = RerankCompressor(reranker=reranker, top_n=3).compress_documents(documents, "error 809")
    scores = reranker.score("error 809", texts)
    expected = sorted(range(4), key=lambda i: -scores[i])[:3]
    assert [d.metadata["source"] for d in compressed] == [f"s{i}" for i in expected]
    assert [d.metadata["rerank_score"] for d in compressed] == [scores[i] for i in expected]


class TestLangChainStandardRetrieverSuite(RetrieversIntegrationTests):
    """LangChain's own conformance suite for retrievers (langchain-tests), over a real index:
    `top_n` is our number-of-results argument, in the constructor and per call."""

    pipeline: RagPipeline

    @pytest.fixture(autouse=True, scope="class")
    def _pipeline(self, request: pytest.FixtureRequest, index: Path, minilm) -> None:
        request.cls.pipeline = RagPipeline(offline_settings(index), embedder=minilm)

    @property
    def retriever_constructor(self) -> type[KnowledgeBaseRetriever]:
        return KnowledgeBaseRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"pipeline": self.pipeline}

    @property
    def retriever_query_example(self) -> str:
        return "How do I reset a VPN token?"

    @property
    def num_results_arg_name(self) -> str:
        return "top_n"
