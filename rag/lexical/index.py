"""A BM25 index beside each Chroma collection (Chroma's own hybrid search is Cloud-only).

Chroma stays the only source of truth. This index is derived from it and can always be rebuilt:
- the terms of each committed document version are kept in one immutable file,
  `<folder>/<doc_id>.<version>.a<analyzer>.json`, written atomically (temporary file + rename), so
  a killed process leaves at worst an unused file, never a half-written one;
- a writer changes the manifest's change token (`KnowledgeBase.generation`) with every manifest
  write, so `refresh()` reads one record to know that nothing changed; on a change it compares the
  committed versions with what the index holds and reads the terms of new versions (from their
  file, else from Chroma, analysed again);
- a small index rebuilds its BM25 matrix on the spot (cheap from terms); a large one puts new
  versions into a delta scored beside the old matrix (with document frequencies of both, so the
  scores share one scale) and hides rows of versions no longer committed, while a new matrix is
  built in a background thread and swapped in whole;
- the ingestion writes a version's term file before it commits the version, and removes the files
  of versions it replaces, deletes or finds abandoned by a killed run, so a query only reads files;
  a query refreshes too, so a process that did not ingest (another API worker, served mode) still
  sees what was committed.

Hits are returned as chunk ids; the caller reads them from Chroma and keeps only chunks of
committed versions, the same rule as dense recall, so a stale index can miss a new document
for one query but never shows half of one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import StoreError
from rag.lexical.analyzer import ANALYZER_VERSION, analyze, has_han
from rag.store import KnowledgeBase
from rag.types import Chunk, DocumentRecord

log = logging.getLogger(__name__)
# bm25s sets its own logger to DEBUG; its "building index" lines are not our users' business.
logging.getLogger("bm25s").setLevel(logging.WARNING)

DocFilter = Callable[[DocumentRecord], bool]


Key = tuple[str, str]  # (doc_id, version): one committed version of a document

# Up to this many chunks the whole matrix is rebuilt in the query that finds a change (well under a
# second); above it the change goes into a small delta at once and the rebuild runs in the background.
SYNC_REBUILD_CHUNKS = 50_000
# A reader asks for the manifest records written since its last read less this margin: writers on
# other machines may stamp records by clocks this far behind its own.
CLOCK_MARGIN_NS = 300 * 10**9
# ... and reads the whole manifest this often when something changed, whatever the records say.
WHOLE_READ_NS = 600 * 10**9


@dataclass(frozen=True)
class _DocTerms:
    chunk_ids: list[str]
    terms: list[list[str]]


@dataclass(frozen=True)
class _Base:
    """The bulk of the index: one bm25s matrix over the versions it was built from."""

    keys: tuple[Key, ...]
    chunk_ids: list[str]
    row_doc: np.ndarray  # the position in `keys` of each row's document
    retriever: Any | None  # bm25s.BM25, None when empty
    doc_freq: np.ndarray  # per bm25s term id: chunks holding the term
    avg_len: float

    @cached_property
    def key_set(self) -> frozenset[Key]:
        return frozenset(self.keys)

    @property
    def vocabulary(self) -> dict[str, int]:
        return getattr(self.retriever, "vocab_dict", None) or {}


@dataclass(frozen=True)
class _Delta:
    """Versions committed since the base was built, scored with the base's statistics plus theirs."""

    keys: tuple[Key, ...]
    chunk_ids: list[str]
    row_doc: np.ndarray
    lengths: np.ndarray  # terms per chunk
    postings: dict[str, tuple[np.ndarray, np.ndarray]]  # term -> (rows, term frequencies)


@dataclass(frozen=True)
class _ManifestView:
    """What this process last read of the manifest."""

    generation: str | None  # its change token then; None: never read
    known: dict[str, DocumentRecord]  # every record by document id, committed or not
    read_ns: int  # when (before the token was read)
    full_read_ns: int  # when it was last read whole
    complete: bool = True  # False: a record went meanwhile, or it is time: a whole read is due

    @cached_property
    def committed(self) -> dict[Key, DocumentRecord]:
        return {(r.doc_id, r.version): r for r in self.known.values() if r.version}


@dataclass(frozen=True)
class _State:
    """One immutable state of the index: swapped whole, so searches never see a half-built one."""

    manifest: _ManifestView
    base: _Base
    delta: _Delta
    hidden: np.ndarray  # per base row: its version is no longer committed

    @property
    def records(self) -> dict[Key, DocumentRecord]:
        """The committed versions."""
        return self.manifest.committed

    @property
    def stale(self) -> bool:
        return bool(self.delta.keys) or bool(self.hidden.any())


def _empty_base() -> _Base:
    return _Base((), [], np.zeros(0, dtype=np.int32), None, np.zeros(0), 0.0)


class LexicalIndex:
    def __init__(
        self,
        kb: KnowledgeBase,
        folder: Path,
        *,
        k1: float = 1.5,
        b: float = 0.75,
        sync_rebuild_chunks: int = SYNC_REBUILD_CHUNKS,
        rebuild_in_background: bool = True,
    ) -> None:
        self.kb = kb
        self.folder = folder
        self.k1 = k1
        self.b = b
        self.sync_rebuild_chunks = sync_rebuild_chunks
        # False: the delta stays until rebuild() and a due whole read until a small index's refresh.
        self.rebuild_in_background = rebuild_in_background
        self._lock = threading.Lock()  # one refresh at a time; searches read `_state` without it
        base = _empty_base()
        self._state = _State(_ManifestView(None, {}, 0, 0), base, self._delta([]), np.zeros(0, dtype=bool))
        self._maintainer: threading.Thread | None = None  # the background reads and rebuilds

    # -- keeping in step with Chroma ----------------------------------------------------------
    def refresh(self) -> bool:
        """Bring the index in line with the committed documents; True when it changed.

        One manifest record (its change token) is read when nothing changed, whatever the size of
        the knowledge base; on a change, the records written since the last read. New versions are
        searchable when this returns: in a rebuilt matrix when the index is small, else in a delta
        beside the old matrix while a new one is built in the background."""
        now = time.time_ns()
        generation = self.kb.generation()
        if generation and generation == self._state.manifest.generation:
            return False
        with self._lock:
            state = self._state
            if generation and generation == state.manifest.generation:
                return False  # another thread refreshed meanwhile
            manifest = self._read_manifest(state, generation, now)
            records = manifest.committed
            changed = records.keys() != state.records.keys()
            if changed:
                in_base = state.base.key_set
                size = len(state.base.chunk_ids) + sum(r.chunks for key, r in records.items() if key not in in_base)
                if state.manifest.generation is None or size <= self.sync_rebuild_chunks:
                    self._state = self._combine(self._build(list(records.values())), manifest)
                else:
                    self._state = self._combine(state.base, manifest)
            else:
                self._state = replace(state, manifest=manifest)
            if self.rebuild_in_background and (self._state.stale or not manifest.complete):
                self._start_maintenance()
        return changed

    def _read_manifest(self, state: _State, generation: str, now: int) -> _ManifestView:
        """The manifest as it is now: on a first read all of it; later the records written since
        the last read (less a margin for writers' clocks). When the count says a record went
        meanwhile (a deletion), or every WHOLE_READ_NS, the whole manifest is due: read here for a
        small index, in the background for a large one. Until then a deleted document's rows may
        take places in the top k, never a place in an answer: its chunks are gone from Chroma,
        and hits are read from there."""
        seen = state.manifest
        if seen.generation is not None:
            changed, total = self.kb.manifest_changes(seen.read_ns - CLOCK_MARGIN_NS)
            known = seen.known | {record.doc_id: record for record in changed}
            complete = len(known) == total and now - seen.full_read_ns < WHOLE_READ_NS
            if complete or not self._small(state):
                return _ManifestView(generation, known, now, seen.full_read_ns, complete)
        return self._whole_manifest(generation, now)

    def _whole_manifest(self, generation: str, now: int) -> _ManifestView:
        return _ManifestView(generation, {record.doc_id: record for record in self.kb.documents()}, now, now)

    def _small(self, state: _State) -> bool:
        return len(state.base.chunk_ids) + len(state.delta.chunk_ids) <= self.sync_rebuild_chunks

    @property
    def needs_rebuild(self) -> bool:
        """Whether searches are served partly from a delta or skip rows of replaced versions."""
        return self._state.stale

    def wait_for_rebuild(self, timeout: float | None = None) -> bool:
        """Wait for the background work (a whole manifest read, a rebuild) to finish; True when
        none is running any more."""
        maintainer = self._maintainer
        if maintainer is not None:
            maintainer.join(timeout)
            return not maintainer.is_alive()
        return True

    def _start_maintenance(self) -> None:
        """Start the background thread unless it runs (called under the lock, where it decides to
        stop: no change is left without one)."""
        if self._maintainer is None:
            self._maintainer = threading.Thread(target=self._maintain, name=f"bm25-{self.kb.name}", daemon=True)
            self._maintainer.start()

    def _maintain(self) -> None:
        try:
            while True:
                with self._lock:
                    state = self._state
                    if state.manifest.complete and not state.stale:
                        self._maintainer = None
                        return
                if not state.manifest.complete:
                    self._read_whole_manifest()
                else:
                    self._rebuild_once(state)
        except Exception:
            # The delta keeps serving; the next change starts another attempt.
            log.exception("background upkeep of the BM25 index of %r failed", self.kb.name)
            with self._lock:
                self._maintainer = None

    def _read_whole_manifest(self) -> None:
        now = time.time_ns()
        manifest = self._whole_manifest(self.kb.generation(), now)
        with self._lock:
            # A refresh meanwhile may have read newer records: the next one reads them again, its
            # token being older than theirs, before any search uses this state.
            self._state = self._combine(self._state.base, manifest)

    def rebuild(self) -> None:
        """Build one matrix over every committed version and swap it in (no more delta or hidden
        rows), again while versions were committed meanwhile."""
        while (state := self._state).stale:
            self._rebuild_once(state)

    def _rebuild_once(self, state: _State) -> None:
        started = time.perf_counter()
        base = self._build(list(state.records.values()))
        with self._lock:
            self._state = self._combine(base, self._state.manifest)
        log.info("BM25 index of %r rebuilt in %.1f s", self.kb.name, time.perf_counter() - started)

    def _combine(self, base: _Base, manifest: _ManifestView) -> _State:
        """The state serving the manifest's committed versions from `base`: versions it lacks go
        into a delta, rows of versions no longer committed are hidden."""
        records = manifest.committed
        in_base = base.key_set
        hidden_docs = np.fromiter((key not in records for key in base.keys), dtype=bool, count=len(base.keys))
        hidden = hidden_docs[base.row_doc] if len(base.row_doc) else np.zeros(0, dtype=bool)
        delta = self._delta([r for key, r in records.items() if key not in in_base])
        return _State(manifest, base, delta, hidden)

    def prune_terms(self) -> None:
        """Drop every term file of a version not committed: what deletions from a process without
        the index folder (another machine) leave. Reads the whole manifest: for `rag ingest --prune`."""
        committed = [(r.doc_id, r.version) for r in self.kb.documents() if r.version]
        with self._lock:
            self._prune(committed)

    def _build(self, records: list[DocumentRecord]) -> _Base:
        import bm25s

        started = time.perf_counter()
        chunk_ids: list[str] = []
        terms: list[list[str]] = []
        row_doc: list[int] = []
        for position, record in enumerate(records):
            doc = self._doc_terms(record)
            chunk_ids.extend(doc.chunk_ids)
            terms.extend(doc.terms)
            row_doc.extend([position] * len(doc.chunk_ids))
        retriever, doc_freq, avg_len = None, np.zeros(0), 0.0
        if chunk_ids:
            retriever = bm25s.BM25(k1=self.k1, b=self.b)
            retriever.index(terms, show_progress=False)
            doc_freq = np.diff(np.asarray(retriever.scores["indptr"]))  # postings per term id
            avg_len = sum(map(len, terms)) / len(terms)
        log.info(
            "BM25 index of %r: %d chunks of %d documents built in %.1f s",
            self.kb.name,
            len(chunk_ids),
            len(records),
            time.perf_counter() - started,
        )
        keys = tuple((r.doc_id, r.version) for r in records)
        return _Base(keys, chunk_ids, np.asarray(row_doc, dtype=np.int32), retriever, doc_freq, avg_len)

    def _delta(self, records: list[DocumentRecord]) -> _Delta:
        chunk_ids: list[str] = []
        row_doc: list[int] = []
        lengths: list[int] = []
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for position, record in enumerate(records):
            doc = self._doc_terms(record)
            for chunk_id, chunk_terms in zip(doc.chunk_ids, doc.terms, strict=True):
                row = len(chunk_ids)
                chunk_ids.append(chunk_id)
                row_doc.append(position)
                lengths.append(len(chunk_terms))
                for term, count in Counter(chunk_terms).items():
                    rows, counts = postings.setdefault(term, ([], []))
                    rows.append(row)
                    counts.append(count)
        return _Delta(
            tuple((r.doc_id, r.version) for r in records),
            chunk_ids,
            np.asarray(row_doc, dtype=np.int32),
            np.asarray(lengths, dtype=np.float64),
            {term: (np.asarray(rows), np.asarray(tf, dtype=np.float64)) for term, (rows, tf) in postings.items()},
        )

    def _path(self, record: DocumentRecord) -> Path:
        return self.folder / _file_name(record.doc_id, record.version)

    def _doc_terms(self, record: DocumentRecord) -> _DocTerms:
        path = self._path(record)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            # One string object per distinct term, not per occurrence: a million chunks' terms
            # held for a build are ~90M occurrences of a few hundred thousand words.
            return _DocTerms(data["chunk_ids"], [list(map(sys.intern, terms)) for terms in data["terms"]])
        except (OSError, ValueError, KeyError):
            pass  # not there yet (or unreadable): derive it from Chroma
        chunk_ids, terms = [], []
        for chunk_id, text, heading in self.kb.version_chunks(record.doc_id, record.version):
            chunk_ids.append(chunk_id)
            terms.append(_chunk_terms(text, heading))
        doc = _DocTerms(chunk_ids, terms)
        self._write(path, {"chunk_ids": chunk_ids, "terms": terms})
        return doc

    def drop_terms(self, doc_id: str, *versions: str) -> None:
        """Remove the term files of versions a writer replaced, deleted or abandoned."""
        for version in versions:
            if version:
                (self.folder / _file_name(doc_id, version)).unlink(missing_ok=True)

    def write_terms(self, doc_id: str, version: str, chunks: Sequence[Chunk]) -> None:
        """Write a version's term file from the chunks a writer holds, before it commits them: the
        processes that search then read the file instead of the chunks back from Chroma."""
        path = self.folder / _file_name(doc_id, version)
        if not path.is_file():
            terms = [_chunk_terms(c.text, " > ".join(c.heading_path)) for c in chunks]
            self._write(path, {"chunk_ids": [c.id for c in chunks], "terms": terms})

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

    def _prune(self, committed: Iterable[Key]) -> None:
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
        state = self._state
        terms = analyze(query)
        if not terms or k <= 0 or not state.records:
            return []
        base_scores, delta_scores = _scores(state, terms, self.k1, self.b)
        if state.hidden.any():
            base_scores[state.hidden] = 0.0
        if doc_filter is not None:
            base_scores *= _allowed(state.base.keys, state.base.row_doc, state.records, doc_filter)
            delta_scores *= _allowed(state.delta.keys, state.delta.row_doc, state.records, doc_filter)
        scores = np.concatenate([base_scores, delta_scores]) if len(delta_scores) else base_scores
        # Only the chunks sharing a term compete: a query's few thousand, not the collection's million.
        matched = np.flatnonzero(scores > 0)
        k = min(k, len(matched))
        if k == 0:
            return []
        matched_scores = scores[matched]
        top = np.argpartition(-matched_scores, k - 1)[:k]
        top = matched[top[np.lexsort((matched[top], -matched_scores[top]))]]  # by score, ties in row order
        split = len(base_scores)
        chunk_id = lambda i: state.base.chunk_ids[i] if i < split else state.delta.chunk_ids[i - split]  # noqa: E731
        return [(chunk_id(int(i)), float(scores[i])) for i in top]

    def unknown_terms(self, query: str, *, refresh: bool = True) -> tuple[str, ...]:
        """The query's Latin-script words that no chunk holds (compared as BM25 terms), as the query
        wrote them ("leave", not the stem "leav"): words the knowledge base has never seen. Common
        English words (how, many, about...) are left out: a small knowledge base may lack them though
        they name no topic. So are Han terms: jieba's cuts of a question often differ from a law's
        wording though the topic is there. `refresh=False`: the caller has just refreshed the index."""
        if refresh:
            self.refresh()
        state = self._state
        if not state.records:
            return ()
        vocabulary, added = state.base.vocabulary, state.delta.postings
        common = _common_terms()

        def unseen(term: str) -> bool:
            return term not in vocabulary and term not in added and term not in common and not has_han(term)

        return tuple(dict.fromkeys(w for w in _WORD.findall(query) if any(map(unseen, analyze(w)))))

    def snapshot(self) -> dict[str, list[str]]:
        """chunk id -> terms, for comparing two states of the index."""
        self.refresh()
        out: dict[str, list[str]] = {}
        for record in self._state.records.values():
            doc = self._doc_terms(record)
            out.update(zip(doc.chunk_ids, doc.terms, strict=True))
        return out


def _scores(state: _State, terms: list[str], k1: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """BM25 (Lucene's variant, as bm25s computes it) of every base and delta row. While a delta
    exists, the base's terms are re-weighted to the document frequencies of base and delta
    together, so both are scored on one scale."""
    base, delta = state.base, state.delta
    vocabulary = base.vocabulary
    if not delta.keys:
        known = [t for t in terms if t in vocabulary]
        if base.retriever is not None and known:
            return np.asarray(base.retriever.get_scores(known), dtype=np.float64), np.zeros(0)
        return np.zeros(len(base.chunk_ids)), np.zeros(0)
    base_scores = np.zeros(len(base.chunk_ids), dtype=np.float64)
    delta_scores = np.zeros(len(delta.chunk_ids), dtype=np.float64)
    n_base, n_all = len(base.chunk_ids), len(base.chunk_ids) + len(delta.chunk_ids)
    avg_len = base.avg_len or float(delta.lengths.mean())
    norm = k1 * (1 - b + b * delta.lengths / avg_len)
    for term in terms:
        term_id = vocabulary.get(term)
        df_base = int(base.doc_freq[term_id]) if term_id is not None else 0
        rows, counts = delta.postings.get(term, (None, None))
        df = df_base + (len(rows) if rows is not None else 0)
        if df == 0:
            continue
        idf = _idf(df, n_all)
        if df_base:
            base_scores += (idf / _idf(df_base, n_base)) * base.retriever.get_scores([term])  # type: ignore[union-attr]
        if rows is not None and counts is not None:
            delta_scores[rows] += idf * counts / (norm[rows] + counts)
    return base_scores, delta_scores


def _idf(df: int, n: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


def _allowed(
    keys: tuple[Key, ...], row_doc: np.ndarray, records: dict[Key, DocumentRecord], doc_filter: DocFilter
) -> np.ndarray:
    """Per row: does its document pass the filter (a version no longer committed never does)."""
    per_doc = np.fromiter(
        (key in records and doc_filter(records[key]) for key in keys), dtype=np.float64, count=len(keys)
    )
    return per_doc[row_doc] if len(row_doc) else np.zeros(0)


_WORD = re.compile(r"\w+")


def _chunk_terms(text: str, heading: str) -> list[str]:
    return analyze(f"{heading}\n{text}" if heading else text)


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
