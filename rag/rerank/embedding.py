"""`embedding`: a second embedder's cosine between question and passage, where no reranking model
can be had (the offline profile: all-MiniLM-L6-v2 beside multilingual-e5 recall).

Its order alone would set aside recall's, which BM25 and the main embedder made together; it is a
second, independent opinion, so the offline profile fuses its order with recall's
(`rerank.fuse_recall_rrf_k`), rescores only recall's head (`rerank.max_candidates`) and keeps it to
the languages the model reads (`rerank.languages`). The same model gives the extractive answer's
second opinion on whether anything answers (`generate.second_opinion_min_similarity`).

Scores are cosines, comparable across questions; they are no probability, so the profile sets no
`generate.min_rerank_score`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.config import EmbeddingSettings, RerankSettings
from rag.embedding import Embedder, build_embedder
from rag.rerank import Reranker


class EmbeddingReranker(Reranker):
    name = "embedding"
    reads_template = False

    def __init__(self, settings: RerankSettings) -> None:
        self.settings = settings
        self.model_name = settings.model
        self.embedder: Embedder = build_embedder(
            EmbeddingSettings(backend=settings.embedding_backend, model=settings.model, device=settings.device)
        )
        self.device = ""

    def warm_up(self) -> None:
        self.embedder.warm_up()
        self.device = self.embedder.device
        self.parameter_count = self.embedder.parameter_count

    def close(self) -> None:
        self.embedder.close()

    def score(self, query: str, passages: Sequence[str], *, instruction: str | None = None) -> list[float]:
        """Cosines; `instruction` (a Qwen3 reranker task) is not read: the embedder has its own query format."""
        if not passages:
            return []
        self.warm_up()
        vectors = np.asarray(self.embedder.embed_documents(passages), dtype=np.float32)
        return [float(s) for s in vectors @ np.asarray(self.embedder.embed_query(query), dtype=np.float32)]
