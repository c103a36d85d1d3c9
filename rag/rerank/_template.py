"""The Qwen3-Reranker prompt, exactly as the model was trained on it (and as vLLM's
qwen3_reranker template renders it). A wrong template gives near-random rankings.

    prefix + body + suffix, scored by softmax([logit("no"), logit("yes")])[1] at the last position.

Only the body is ever truncated (its end, i.e. the document's tail); prefix and suffix stay whole.
"""

from __future__ import annotations

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


# A chat template that renders the same bytes from sentence-transformers' pair messages
# ({"role": "query"}, {"role": "document"}, and the instruction as an optional system message),
# for CrossEncoder on a Qwen3-Reranker folder whose own template knows only system/user/assistant.
CHAT_TEMPLATE = (
    "{%- set ns = namespace(instruction='" + DEFAULT_TASK + "', query='', document='') -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'system' -%}{%- set ns.instruction = message.content -%}"
    "{%- elif message.role == 'query' -%}{%- set ns.query = message.content -%}"
    "{%- elif message.role == 'document' -%}{%- set ns.document = message.content -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>system\\n" + SYSTEM.replace("'", "\\'") + "<|im_end|>\\n<|im_start|>user\\n' -}}"
    "{{- '<Instruct>: ' + ns.instruction + '\\n<Query>: ' + ns.query + '\\n<Document>: ' + ns.document -}}"
    "{{- '<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' -}}"
)
