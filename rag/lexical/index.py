"""A BM25 index beside each Chroma collection (Chroma's own hybrid search is Cloud-only).

Chroma stays the only source of truth. This index is derived from it and can always be rebuilt:
- the terms of each committed document version are kept in one immutable file,
  `<folder>/<doc_id>.<version>.a<analyzer>.json`, written atomically (temporary file + rename), so
  a killed process leaves at worst an unused file, never a half-written one;
- `refresh()` compares the manifest's committed versions with what the index holds, reads the
  chunks of any new version back from Chroma, analyses them, and rebuilds the BM25 matrix (cheap
  from terms: no re-analysis); versions no longer committed drop out;
- the ingestion calls `refresh(prune=True)` after every run, under its writer lock, so the first
  query after an ingest pays nothing; a query refreshes too, so a process that did not ingest
  (another API worker, served mode) still sees what was committed.

Hits are returned as chunk ids; the caller reads them from Chroma and keeps only chunks of
committed versions, the same rule as dense recall, so a stale index can miss a new document
for one query but never shows half of one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.errors import StoreError
from rag.lexical.analyzer import ANALYZER_VERSION, analyze, has_han
from rag.store import KnowledgeBase
from rag.types import DocumentRecord

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG; its "building index" lines are not our users' business.
logging.getLogger("bm25s").setLevel(logging.WARNING)

DocFilter = Callable[[DocumentRecord], bool]


@dataclass(frozen=True)
class _DocTerms:
    chunk_ids: list[str]
    terms: list[list[str]]


@dataclass(frozen=True)
class _Built:
    """One immutable state of the index: swapped whole, so searches never see a half-built one."""

    committed: frozenset[tuple[str, str]]  # (doc_id, version)
    chunk_ids: list[str]
    row_doc: np.ndarray  # the document (index into `docs`) of each row
    docs: list[DocumentRecord]
    retriever: object | None  # bm25s.BM25, None when empty


class LexicalIndex:
    def __init__(self, kb: KnowledgeBase, folder: Path, *, k1: float = 1.5, b: float = 0.75) -> None:
        self.kb = kb
        self.folder = folder
        self.k1 = k1
        self.b = b
        self._lock = threading.Lock()
        self._built = _Built(frozenset(), [], np.zeros(0, dtype=np.int32), [], None)

    # -- keeping in step with Chroma ----------------------------------------------------------
    def _committed(self) -> tuple[list[DocumentRecord], frozenset[tuple[str, str]]]:
        records = [r for r in self.kb.documents() if r.version]
        return records, frozenset((r.doc_id, r.version) for r in records)

    def refresh(self, *, prune: bool = False) -> bool:
        """Bring the index in line with the committed documents; True when it changed."""
        records, committed = self._committed()
        with self._lock:
            changed = committed != self._built.committed
            if changed:
                self._built = self._build(records, committed)
            if prune:
                self._prune(committed)
        return changed

    def save_terms(self) -> None:
        """Write the term file of every committed version that lacks one and drop the others,
        without building the matrix: what the ingestion does (it never searches), so that the
        processes that do search only read files."""
        records, committed = self._committed()
        with self._lock:
            for record in records:
                if not self._path(record).is_file():
                    self._doc_terms(record)
            self._prune(committed)

    def _build(self, records: list[DocumentRecord], committed: frozenset[tuple[str, str]]) -> _Built:
        import bm25s

        chunk_ids: list[str] = []
        terms: list[list[str]] = []
        row_doc: list[int] = []
        for position, record in enumerate(records):
            doc = self._doc_terms(record)
            chunk_ids.extend(doc.chunk_ids)
            terms.extend(doc.terms)
            row_doc.extend([position] * len(doc.chunk_ids))
        retriever = None
        if chunk_ids:
            retriever = bm25s.BM25(k1=self.k1, b=self.b)
            retriever.index(terms, show_progress=False)
        log.info("BM25 index of %r: %d chunks of %d documents", self.kb.name, len(chunk_ids), len(records))
        return _Built(committed, chunk_ids, np.asarray(row_doc, dtype=np.int32), records, retriever)

    def _path(self, record: DocumentRecord) -> Path:
        return self.folder / _file_name(record.doc_id, record.version)

    def _doc_terms(self, record: DocumentRecord) -> _DocTerms:
        path = self._path(record)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return _DocTerms(data["chunk_ids"], data["terms"])
        except (OSError, ValueError, KeyError):
            pass  # not there yet (or unreadable): derive it from Chroma
        chunk_ids, terms = [], []
        for chunk_id, text, heading in self.kb.version_chunks(record.doc_id, record.version):
            chunk_ids.append(chunk_id)
            terms.append(analyze(f"{heading}\n{text}" if heading else text))
        doc = _DocTerms(chunk_ids, terms)
        self._write(path, {"chunk_ids": chunk_ids, "terms": terms})
        return doc

    def _write(self, path: Path, data: dict) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as exc:
            # The index still works from memory; the next process re-derives the file.
            log.warning("cannot keep BM25 terms in %s: %s", self.folder, exc)

    def _prune(self, committed: frozenset[tuple[str, str]]) -> None:
        keep = {_file_name(doc_id, version) for doc_id, version in committed}
        for path in self._files():
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _files(self) -> Iterator[Path]:
        if self.folder.is_dir():
            yield from (p for p in self.folder.iterdir() if p.suffix == ".json")

    # -- searching ----------------------------------------------------------------------------
    def search(self, query: str, k: int, *, doc_filter: DocFilter | None = None) -> list[tuple[str, float]]:
        """Up to k (chunk id, BM25 score) pairs, best first; chunks sharing no term score 0 and are left out."""
        self.refresh()
        built = self._built
        terms = analyze(query)
        if built.retriever is None or not terms or k <= 0:
            return []
        scores = built.retriever.get_scores(terms)  # type: ignore[attr-defined]
        if doc_filter is not None:
            allowed = np.fromiter((doc_filter(r) for r in built.docs), dtype=bool, count=len(built.docs))
            scores = np.where(allowed[built.row_doc], scores, 0.0)
        k = min(k, int(np.count_nonzero(scores > 0)))
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]  # by score, ties in index order: deterministic
        return [(built.chunk_ids[i], float(scores[i])) for i in top]

    def unknown_terms(self, query: str, *, refresh: bool = True) -> tuple[str, ...]:
        """The query's Latin-script words that no chunk holds (compared as BM25 terms), as the query
        wrote them ("leave", not the stem "leav"): words the knowledge base has never seen. Common
        English words (how, many, about...) are left out: a small knowledge base may lack them though
        they name no topic. So are Han terms: jieba's cuts of a question often differ from a law's
        wording though the topic is there. `refresh=False`: the caller has just refreshed the index."""
        if refresh:
            self.refresh()
        vocabulary = getattr(self._built.retriever, "vocab_dict", None)
        if vocabulary is None:
            return ()
        common = _common_terms()

        def unseen(term: str) -> bool:
            return term not in vocabulary and term not in common and not has_han(term)

        return tuple(dict.fromkeys(w for w in _WORD.findall(query) if any(map(unseen, analyze(w)))))

    def snapshot(self) -> dict[str, list[str]]:
        """chunk id -> terms, for comparing two states of the index."""
        self.refresh()
        out: dict[str, list[str]] = {}
        for record in self._built.docs:
            doc = self._doc_terms(record)
            out.update(zip(doc.chunk_ids, doc.terms, strict=True))
        return out


_WORD = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _common_terms() -> frozenset[str]:
    """Common English words as the analyzer turns them into terms (stemmed)."""
    from stop_words import get_stop_words

    return frozenset(analyze(" ".join(get_stop_words("en"))))


def _file_name(doc_id: str, version: str) -> str:
    return f"{doc_id}.{version}.a{ANALYZER_VERSION}.json"


class LexicalIndexes:
    """One LexicalIndex per knowledge base, under data_dir/bm25/<collection>/."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir / "bm25"
        self.k1 = settings.recall.bm25_k1
        self.b = settings.recall.bm25_b
        self._indexes: dict[str, LexicalIndex] = {}
        self._lock = threading.Lock()

    def get(self, kb: KnowledgeBase) -> LexicalIndex:
        with self._lock:
            index = self._indexes.get(kb.name)
            if index is None or index.kb is not kb:
                index = LexicalIndex(kb, self.root / kb.name, k1=self.k1, b=self.b)
                self._indexes[kb.name] = index
            return index

    def drop(self, name: str) -> None:
        with self._lock:
            self._indexes.pop(name, None)
        folder = self.root / name
        try:
            for path in folder.glob("*.json"):
                path.unlink(missing_ok=True)
            if folder.is_dir():
                folder.rmdir()
        except OSError as exc:
            raise StoreError(f"cannot remove the BM25 index {folder}: {exc}") from exc
