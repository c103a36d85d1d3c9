"""The Qwen3-Reranker prompt, exactly as the model was trained on it (and as vLLM's
qwen3_reranker template renders it). A wrong template gives near-random rankings.

    prefix + body + suffix, scored by softmax([logit("no"), logit("yes")])[1] at the last position.

Only the body is ever truncated (its end, i.e. the document's tail); prefix and suffix stay whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag.qwen3 import DEFAULT_TASK

SYSTEM = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
PREFIX = f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n"
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
YES, NO = "yes", "no"


def body(query: str, document: str, instruction: str | None = None) -> str:
    return f"<Instruct>: {instruction or DEFAULT_TASK}\n<Query>: {query}\n<Document>: {document}"


def render(query: str, document: str, instruction: str | None = None) -> str:
    """The whole input for one pair, as text (for clients that send text, e.g. to vLLM /score)."""
    return PREFIX + body(query, document, instruction) + SUFFIX


def split_for_scoring(query: str, documents: Sequence[str], instruction: str | None = None) -> tuple[str, list[str]]:
    """The prompt cut where a score API joins its two texts (vLLM scores `text_1 + text_2` when it
    has no template of its own): the query side carries prefix, instruction and query, each document
    side itself and the suffix. Joined, each pair is exactly `render()`."""
    head = f"{PREFIX}<Instruct>: {instruction or DEFAULT_TASK}\n<Query>: {query}\n"
    return head, [f"<Document>: {document}{SUFFIX}" for document in documents]


# The same prompt as a chat template, for renderers that take one: vLLM started with
# `--chat-template` (the server applies it; our client then sends raw texts) and sentence-transformers'
# CrossEncoder on a Qwen3-Reranker folder, whose own template knows only system/user/assistant.
# tests/test_rerank.py checks that it renders exactly `render()`'s bytes.
TEMPLATE_FILE = Path(__file__).with_name("qwen3_reranker.jinja")
CHAT_TEMPLATE = TEMPLATE_FILE.read_text(encoding="utf-8")
