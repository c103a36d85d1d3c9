"""Text -> vectors. Documents are embedded as they are; queries with the model's query prompt.

Backends behind one protocol, picked by name (rag.backends.EMBEDDERS): `local` runs a
sentence-transformers model in-process, `openai_http` calls a server's /v1/embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rag.backends import EMBEDDERS, Backend, backend_class
from rag.config import EmbeddingSettings


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


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    """The configured backend, not yet warmed up."""
    embedder: Embedder = backend_class(EMBEDDERS[settings.backend])(settings)
    return embedder


__all__ = ["Embedder", "build_embedder"]
