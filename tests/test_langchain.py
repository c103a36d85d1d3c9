"""The LangChain adapters on a real index and the tiny Qwen3 reranker."""

from __future__ import annotations

from pathlib import Path

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from rag.config import load_settings
from rag.langchain import KnowledgeBaseRetriever, RerankCompressor
from rag.pipeline import RagPipeline
from rag.rerank import build_reranker

from .conftest import offline_settings
from .test_pipeline import index  # noqa: F401  (the module-scoped index fixture)


def test_retriever_returns_cited_documents_in_a_chain(index: Path, minilm) -> None:  # noqa: F811
    retriever = KnowledgeBaseRetriever(pipeline=RagPipeline(offline_settings(index), embedder=minilm), top_n=2)
    docs = retriever.invoke("what does error 809 mean?")
    assert len(docs) == 2 and docs[0].metadata["file"] == "runbook.md" and "809" in docs[0].page_content
    assert docs[0].metadata["recall_rank"] == 1 and docs[0].id == docs[0].metadata["chunk_id"]
    chain = retriever | RunnableLambda(lambda ds: [d.metadata["file"] for d in ds])
    assert chain.invoke("price per seat")[0] == "faq.txt"


def test_compressor_reorders_by_the_rerankers_scores(tiny_models: dict[str, Path]) -> None:
    settings = load_settings(environ={"RAG_RERANK__MODEL": str(tiny_models["reranker"]), "RAG_RERANK__DEVICE": "cpu"})
    reranker = build_reranker(settings.rerank)
    reranker.warm_up()
    texts = ["Printers jam in winter.", "Error 809: the firewall blocks L2TP.", "第一条 数据安全", "Seats cost 30 EUR."]
    documents = [Document(page_content=t, metadata={"source": f"s{i}"}) for i, t in enumerate(texts)]
    compressed = RerankCompressor(reranker=reranker, top_n=3).compress_documents(documents, "error 809")
    scores = reranker.score("error 809", texts)
    expected = sorted(range(4), key=lambda i: -scores[i])[:3]
    assert [d.metadata["source"] for d in compressed] == [f"s{i}" for i in expected]
    assert [d.metadata["rerank_score"] for d in compressed] == [scores[i] for i in expected]
