"""Frozen value types passed between stages. Dicts appear only at the JSON and Chroma edges."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Section:
    """A run of text from one place in a document: one PDF page, or the body under one heading."""

    text: str
    page: int | None = None  # 1-based; None for formats without pages
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadedDocument:
    path: str
    file_type: str  # pdf | markdown | text | html | docx
    sections: tuple[Section, ...]
    pages: int = 0  # PDF page count (0 for formats without pages)
    title: str = ""


@dataclass(frozen=True)
class Chunk:
    """One embeddable piece of a document, with everything needed to cite it."""

    id: str
    text: str
    doc_id: str
    version: str  # the source file's content hash: chunks of one version replace another's
    source: str
    file_type: str
    chunk_index: int
    char_start: int  # span in the document's normalised text
    char_end: int
    pages: tuple[int, ...] = ()
    heading_path: tuple[str, ...] = ()
    content_hash: str = ""
    ingested_at: str = ""

    @property
    def page(self) -> int | None:
        return self.pages[0] if self.pages else None

    def metadata(self) -> dict[str, Any]:
        """The flat metadata Chroma stores beside the vector."""
        meta: dict[str, Any] = {
            "doc_id": self.doc_id,
            "version": self.version,
            "source": self.source,
            "file_name": self.source.replace("\\", "/").rsplit("/", 1)[-1],
            "file_type": self.file_type,
            "chunk_index": self.chunk_index,
            "char_start": self.char_start,
            "char_end": self.char_end,
            "heading": " > ".join(self.heading_path),
            "content_hash": self.content_hash,
            "ingested_at": self.ingested_at,
        }
        if self.pages:
            meta["page"] = self.pages[0]
            meta["page_end"] = self.pages[-1]
            meta["pages"] = list(self.pages)
        return meta


@dataclass(frozen=True)
class DocumentRecord:
    """The manifest's entry for one source file.

    `version` names the chunk set queries may see; `pending_version` is a write in flight
    (set before chunks are written, cleared once they are committed or cleaned up).
    """

    doc_id: str
    source: str
    file_type: str
    size: int
    sha256: str
    version: str = ""
    pending_version: str = ""
    chunks: int = 0
    pages: int = 0
    title: str = ""
    ingested_at: str = ""

    @property
    def visible(self) -> bool:
        return bool(self.version)


@dataclass(frozen=True)
class Passage:
    """A recalled chunk, perhaps reranked: what a generator reads and an answer cites.

    `recall_score` is what ranked it in recall: the cosine similarity (dense), the BM25 score
    (bm25) or the fused score (hybrid); `dense_score` / `bm25_score` are the parts it had.
    """

    chunk_id: str
    text: str
    recall_rank: int
    recall_score: float
    rerank_score: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    dense_score: float | None = None
    bm25_score: float | None = None

    @property
    def file_name(self) -> str:
        return str(self.metadata.get("file_name", ""))

    @property
    def page(self) -> int | None:
        page = self.metadata.get("page")
        return int(page) if page is not None else None

    @property
    def pages(self) -> tuple[int, ...]:
        """Every page the passage spans (empty for formats without pages)."""
        pages = self.metadata.get("pages") or ([self.page] if self.page is not None else [])
        return tuple(sorted({int(p) for p in pages}))

    @property
    def heading(self) -> str:
        return str(self.metadata.get("heading", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk_id": self.chunk_id,
            "file": self.file_name,
            "source": self.metadata.get("source", ""),
            "page": self.page,
            "pages": list(self.metadata.get("pages", []) or []),
            "heading": self.heading,
            "text": self.text,
            "recall_rank": self.recall_rank,
            "recall_score": round(self.recall_score, 6),
            "rerank_score": _rounded(self.rerank_score),
            "dense_score": _rounded(self.dense_score),
            "bm25_score": _rounded(self.bm25_score),
            "doc_id": self.metadata.get("doc_id", ""),
        }


@dataclass(frozen=True)
class SearchResult:
    query: str
    passages: tuple[Passage, ...]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    degraded: tuple[str, ...] = ()  # stages that fell back, e.g. ("rerank",)
    notes: tuple[str, ...] = ()  # what the pipeline adapted, e.g. fewer candidates on a CPU
    reranked: int = 0  # candidates the reranker scored (0: recall order)
    # The query's words no document holds (generate.unknown_term_min_similarity asks for them).
    unknown_terms: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "passages": [p.to_dict() for p in self.passages],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "degraded": list(self.degraded),
            "notes": list(self.notes),
            "reranked": self.reranked,
        }


@dataclass(frozen=True)
class Citation:
    """One numbered passage the generator was given; `cited` says whether the answer uses [n]."""

    n: int
    passage: Passage
    cited: bool = False
    snippet: str = ""  # the sentence that best supports the answer, or the passage's opening

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "cited": self.cited, "snippet": self.snippet, **self.passage.to_dict()}


TurnRole = Literal["user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation before the question (rag.conversation)."""

    role: TurnRole
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Answer:
    """What `ask` returns: the answer text, its numbered sources, and how it was made.

    `found` is False when the knowledge base holds nothing good enough to answer from: the text
    then says so, and no source is cited.
    """

    question: str
    text: str
    citations: tuple[Citation, ...]
    found: bool
    generator: str
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    degraded: tuple[str, ...] = ()  # stages that fell back: "rerank", "generate"
    notes: tuple[str, ...] = ()
    reranked: int = 0  # candidates the reranker scored (0: recall order)
    query: str = ""  # what was searched: the question, or a follow-up made standalone ("": the question)
    # Names this answer in feedback (POST /v1/feedback); `logged`: the question log holds it.
    answer_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    logged: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer_id": self.answer_id,
            "logged": self.logged,
            "question": self.question,
            "query": self.query or self.question,
            "answer": self.text,
            "found": self.found,
            "citations": [c.to_dict() for c in self.citations],
            "generator": self.generator,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "degraded": list(self.degraded),
            "notes": list(self.notes),
            "reranked": self.reranked,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
