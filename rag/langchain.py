"""LangChain adapters: the pipeline as a retriever, the reranker as a document compressor.

    retriever = KnowledgeBaseRetriever(pipeline=RagPipeline(load_settings()), collection="it")
    docs = retriever.invoke("How do I reset my VPN token?")   # reranked top-n, cited metadata

    compressor = RerankCompressor(reranker=build_reranker(settings.rerank), top_n=5)
    ContextualCompressionRetriever(base_compressor=compressor, base_retriever=any_retriever)

Documents carry the same metadata as our own answers (file, page, heading, recall rank, rerank
score, chunk id), so a chain can cite as well as `rag ask` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.pipeline import RagPipeline, SearchOptions
from rag.rerank import Reranker
from rag.types import Passage


def to_document(passage: Passage) -> Document:
    metadata = {k: v for k, v in passage.to_dict().items() if k != "text"}
    return Document(page_content=passage.text, metadata=metadata, id=passage.chunk_id)


class KnowledgeBaseRetriever(BaseRetriever):
    """Recall -> rerank -> top-n from one knowledge base, as LangChain Documents.

    `top_n` is the number of documents returned (LangChain's "k"); `top_k` how many chunks recall
    hands the reranker. Each may also be given per call, as may `instruction` and `filters`:
    `retriever.invoke(query, top_n=1)`. Unset, they take the pipeline's settings.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: RagPipeline
    collection: str | None = None
    top_k: int | None = None
    top_n: int | None = None
    instruction: str | None = None
    filters: dict[str, Any] | None = None

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        top_n: int | None = None,
        top_k: int | None = None,
        instruction: str | None = None,
        filters: dict[str, Any] | None = None,
    ) -> list[Document]:
        options = SearchOptions(
            top_k=top_k if top_k is not None else self.top_k,
            top_n=top_n if top_n is not None else self.top_n,
            instruction=instruction if instruction is not None else self.instruction,
            filters=filters if filters is not None else self.filters,
        )
        result = self.pipeline.search(query, collection=self.collection, options=options)
        return [to_document(p) for p in result.passages]


class RerankCompressor(BaseDocumentCompressor):
    """Any of our rerankers (Qwen3 local, vLLM, cross-encoder) reordering another retriever's
    documents: best first, the top_n kept, the score in metadata["rerank_score"]."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    reranker: Reranker
    top_n: int = 5
    instruction: str | None = None

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        scores = self.reranker.score(query, [d.page_content for d in documents], instruction=self.instruction)
        ranked = sorted(zip(documents, scores, strict=True), key=lambda pair: -pair[1])[: self.top_n]
        return [
            Document(page_content=d.page_content, metadata={**d.metadata, "rerank_score": s}, id=d.id)
            for d, s in ranked
        ]
