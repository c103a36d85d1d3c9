"""Request bodies (validated by pydantic; the OpenAPI schema at /docs comes from these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryOptions(_Body):
    collection: str | None = Field(default=None, description="Knowledge base; default: the configured one.")
    top_k: int | None = Field(default=None, ge=1, description="Chunks recalled (default 100).")
    top_n: int | None = Field(default=None, ge=1, le=100, description="Passages kept after reranking (default 5).")
    instruction: str | None = Field(default=None, max_length=2000, description="Reranker task instruction.")
    filters: dict[str, str | list[str]] | None = Field(
        default=None, description='e.g. {"file": "a.pdf", "file_type": ["pdf", "docx"]}'
    )
    recall_mode: Literal["dense", "bm25", "hybrid"] | None = Field(
        default=None, description="Recall by vectors, BM25, or both fused (default: recall.mode)."
    )


class SearchRequest(QueryOptions):
    query: str = Field(min_length=1)


class AskRequest(QueryOptions):
    question: str = Field(min_length=1)
    stream: bool = Field(default=False, description="Server-sent events: delta... then answer.")


class RerankDocument(_Body):
    text: str


class RerankRequest(_Body):
    """vLLM / Jina / Cohere rerank shape, plus an optional instruction."""

    model: str | None = None
    query: str = Field(min_length=1)
    documents: list[str | RerankDocument]
    top_n: int | None = Field(default=None, ge=0, description="0 or absent: all, best first.")
    instruction: str | None = Field(default=None, max_length=2000)
    return_documents: bool = True
