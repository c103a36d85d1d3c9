"""Request bodies (validated by pydantic; the OpenAPI schema at /docs comes from these)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from rag.config import RecallMode

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON may escape one ("\\ud800"); it is not text


def _first_lone_surrogate(body: Any) -> str | None:
    """Where in a decoded JSON body a string with a lone surrogate is, or None. A loop, not
    recursion: a body nested as deep as the JSON parser allows must not overflow the stack here."""
    pending: list[tuple[str, Any]] = [("", body)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if _LONE_SURROGATE.search(value):
                return where or "body"
        elif isinstance(value, dict):
            pending += [(where or "body", key) for key in value]
            pending += [(f"{where}.{key}".lstrip("."), item) for key, item in value.items()]
        elif isinstance(value, list):
            pending += [(f"{where}.{i}".lstrip("."), item) for i, item in enumerate(value)]
    return None


class JsonBody(BaseModel):
    """Every JSON request body. pydantic lets a lone surrogate through in some fields (unions,
    Any), and the tokenizers then fail on it: refused here, once, wherever it is."""

    @model_validator(mode="before")
    @classmethod
    def _text_is_unicode(cls, data: Any) -> Any:
        where = _first_lone_surrogate(data)
        if where:
            raise PydanticCustomError(
                "string_unicode", "{where}: holds a lone UTF-16 surrogate, which is not text", {"where": where}
            )
        return data


def _not_blank(text: str) -> str:
    if not text.strip():
        raise PydanticCustomError("blank", "holds only white space; ask something")
    return text


# What a user asks: a question or a search query. Its length cap is api.max_question_chars,
# checked in the route (a 413 naming the limit, which a schema constant could not follow).
Question = Annotated[str, Field(min_length=1), AfterValidator(_not_blank)]


class _Body(JsonBody):
    model_config = ConfigDict(extra="forbid")


class QueryOptions(_Body):
    collection: str | None = Field(default=None, description="Knowledge base; default: the configured one.")
    top_k: int | None = Field(default=None, ge=1, description="Chunks recalled (default 100).")
    top_n: int | None = Field(default=None, ge=1, le=100, description="Passages kept after reranking (default 5).")
    instruction: str | None = Field(default=None, max_length=2000, description="Reranker task instruction.")
    filters: dict[str, str | list[str]] | None = Field(
        default=None, description='e.g. {"file": "a.pdf", "file_type": ["pdf", "docx"]}'
    )
    recall_mode: RecallMode | None = Field(
        default=None, description="Recall by vectors, BM25, or both fused (default: recall.mode)."
    )


class SearchRequest(QueryOptions):
    query: Question


class HistoryTurn(JsonBody):
    """One earlier message of the conversation. Checked in the route (roles, empty or over-long
    content), so the error names the setting that limits it."""

    model_config = ConfigDict(extra="ignore")
    role: str = Field(description='"user" or "assistant"')
    content: Any = Field(description="What was said.")


class AskRequest(QueryOptions):
    question: Question
    history: list[HistoryTurn] = Field(
        default=[],
        description="The conversation before `question`, oldest first: a follow-up is searched made standalone "
        "(the answer's `query`). Capped to the newest conversation.max_turns / max_tokens.",
        examples=[[{"role": "user", "content": "How do I fix VPN error 809?"}, {"role": "assistant", "content": "…"}]],
    )
    stream: bool = Field(default=False, description="Server-sent events: delta... then answer.")


class RerankDocument(_Body):
    text: str


class RerankRequest(_Body):
    """vLLM / Jina / Cohere rerank shape, plus an optional instruction."""

    model: str | None = None
    query: Question
    documents: list[str | RerankDocument]
    top_n: int | None = Field(default=None, ge=0, description="0 or absent: all, best first.")
    instruction: str | None = Field(default=None, max_length=2000)
    return_documents: bool = True


class FeedbackRequest(_Body):
    """A rating of one answer, by its `answer_id`; the comment's cap (2,000 characters) is checked
    in the route, a 413 like every other over-long text."""

    answer_id: str = Field(min_length=1, max_length=64, examples=["3f2c9e0a5b7d4c1e8f6a2b9d0c4e7a1f"])
    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, description="What was wrong or right (optional).")
    expected_file: str | None = Field(default=None, max_length=500, description="The file that holds the answer.")
    expected_page: int | None = Field(default=None, ge=1, le=100000, description="Its page.")
