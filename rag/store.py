"""Chroma: one collection per knowledge base, plus a small manifest collection beside it.

The manifest (one record per source document) lives in Chroma too, so the embedded store and
a Chroma server behave the same and several API workers share it. It is also what makes
writes safe: a document's chunks are visible to queries only when their `version` equals the
version its manifest record names, and a record is one atomic upsert. A write in flight, or
one killed half-way, is therefore never seen (see ingest.pipeline for the protocol).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from rag.errors import CollectionNotFound, ConfigError, StoreError, StoreUnavailable
from rag.types import Chunk, DocumentRecord, Passage

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

    from rag.config import Settings

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = "__manifest"
INSTRUCTION_KEY = "rerank_instruction"  # in the chunk collection's metadata
_NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{1,60})[A-Za-z0-9]$")
_MANIFEST_VECTOR = [1.0]  # Chroma wants a vector per record; the manifest is never searched
# The manifest record whose token changes with every manifest write: a reader checks this one record
# to know whether anything changed, instead of reading the whole manifest. Not a document id (those
# are 16 hex digits).
GENERATION_ID = "~generation"
# When a manifest record was last written (the writer's clock, ns): a reader that saw the manifest
# at time t reads only the records written since t less a margin for clocks that disagree.
UPDATED_KEY = "updated_ns"
_PAGE = 1000  # records per get() when reading a whole collection
_MAX_BATCH = 5000  # Chroma refuses writes of more than 5461 records
_CONNECT_LOCK = threading.Lock()
# Queries again when a document's version switched while one ran (a write commits in milliseconds).
_SWITCH_RETRIES = 3


def validate_collection_name(name: str) -> str:
    if not _NAME_RE.match(name) or name.endswith(MANIFEST_SUFFIX):
        raise ConfigError(
            f"invalid collection name {name!r}: use 3-62 letters, digits, '-' or '_', "
            f"starting and ending with a letter or digit, not ending in {MANIFEST_SUFFIX!r}"
        )
    return name


class VectorStore:
    """Opens knowledge bases in an embedded Chroma under data_dir, or on a Chroma server."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: ClientAPI | None = None

    @property
    def location(self) -> str:
        return self._settings.chroma.url or str(self._settings.data_dir / "chroma")

    def client(self) -> ClientAPI:
        # One lock for the process: Chroma shares one system per path between clients, and two
        # threads creating the first client at once (two API requests) break its start-up.
        with _CONNECT_LOCK:
            if self._client is None:
                self._client = self._connect()
        return self._client

    def _connect(self) -> ClientAPI:
        import chromadb
        from chromadb.config import Settings as ChromaClientSettings

        # A fresh Settings per client: Chroma keys shared state on it.
        chroma_settings = ChromaClientSettings(anonymized_telemetry=False, allow_reset=False)
        url = self._settings.chroma.url
        try:
            if url:
                parsed = urlparse(url)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise ConfigError(f"chroma.url must look like http://host:port, got {url!r}")
                port = parsed.port or (443 if parsed.scheme == "https" else 8000)
                client = chromadb.HttpClient(
                    host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=chroma_settings
                )
                _limit_time(client, self._settings.chroma.timeout_s)
                return client
            path = self._settings.data_dir / "chroma"
            path.mkdir(parents=True, exist_ok=True)
            if not os.access(path, os.W_OK):  # EROFS even for root: embedded Chroma writes to open at all
                raise StoreError(f"the data folder {path} is read-only: embedded Chroma writes to it even to read")
            return chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        except (ConfigError, StoreError):
            raise
        except Exception as exc:
            raise _store_error(f"cannot open the Chroma store at {self.location}", exc) from exc

    def list_knowledge_bases(self) -> list[str]:
        names = {c.name if hasattr(c, "name") else str(c) for c in self.client().list_collections()}
        return sorted(n for n in names if f"{n}{MANIFEST_SUFFIX}" in names)

    def open(
        self,
        name: str,
        *,
        embedding_model: str | None = None,
        dimension: int | None = None,
        create: bool = False,
    ) -> KnowledgeBase:
        """Open a knowledge base; with create=True make it if missing (model and dimension required).

        When a model is given, it must be the one the collection was built with: vectors of two
        models never share a collection.
        """
        validate_collection_name(name)
        client = self.client()
        try:
            if create:
                if embedding_model is None or dimension is None:
                    raise ValueError("creating a collection needs the embedding model and its dimension")
                hnsw = {
                    "space": "cosine",
                    "ef_search": self._settings.chroma.ef_search,
                    "ef_construction": self._settings.chroma.ef_construction,
                }
                chunks = client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": hnsw},  # type: ignore[arg-type]
                    metadata={"embedding_model": embedding_model, "embedding_dim": dimension},
                )
                manifest = client.get_or_create_collection(name + MANIFEST_SUFFIX, embedding_function=None)
            else:
                chunks = client.get_collection(name, embedding_function=None)
                manifest = client.get_collection(name + MANIFEST_SUFFIX, embedding_function=None)
        except ValueError:
            raise
        except Exception as exc:
            message = str(exc).lower()
            if not create and ("does not exist" in message or "not found" in message):
                raise CollectionNotFound(name, str(self.location)) from None
            raise _store_error(f"cannot open collection {name!r} at {self.location}", exc) from exc
        kb = KnowledgeBase(name, chunks, manifest)
        if embedding_model is not None:
            kb.check_model(embedding_model, dimension)
        return kb

    def drop(self, name: str) -> None:
        validate_collection_name(name)
        client = self.client()
        for collection in (name, name + MANIFEST_SUFFIX):
            try:
                client.delete_collection(collection)
            except Exception as exc:
                if "does not exist" not in str(exc).lower():
                    raise StoreError(f"cannot delete collection {collection!r}: {exc}") from exc


class KnowledgeBase:
    """One knowledge base: its chunk collection and its document manifest."""

    def __init__(self, name: str, chunks: Collection, manifest: Collection) -> None:
        self.name = name
        self._chunks = chunks
        self._manifest = manifest

    # -- identity -------------------------------------------------------------------------
    @property
    def embedding_model(self) -> str:
        return str((self._chunks.metadata or {}).get("embedding_model", ""))

    @property
    def dimension(self) -> int | None:
        dim = (self._chunks.metadata or {}).get("embedding_dim")
        return int(dim) if dim is not None else None

    @property
    def instruction(self) -> str | None:
        """The collection's own rerank instruction (legal, IT, sales...), if it has one."""
        value = (self._chunks.metadata or {}).get(INSTRUCTION_KEY)
        return str(value) if value else None

    def set_instruction(self, instruction: str | None) -> None:
        """Set (or with None, clear) the collection's default rerank instruction."""
        metadata = {k: v for k, v in (self._chunks.metadata or {}).items() if k != INSTRUCTION_KEY}
        if instruction:
            metadata[INSTRUCTION_KEY] = instruction
        self._call(self._chunks.modify, metadata=metadata)

    def summary(self) -> dict[str, Any]:
        """What a listing of knowledge bases shows for this one."""
        return {
            "name": self.name,
            "documents": len(self.documents()),
            "chunks": self.count(),
            "embedding_model": self.embedding_model,
            "instruction": self.instruction,
        }

    def check_model(self, model: str, dimension: int | None) -> None:
        if (self.embedding_model and self.embedding_model != model) or (
            dimension is not None and self.dimension is not None and dimension != self.dimension
        ):
            raise ConfigError(
                f"collection {self.name!r} holds vectors of {self.embedding_model!r} (dim {self.dimension}); "
                f"the configured embedder is {model!r} (dim {dimension}). Use another collection "
                f"or delete this one and ingest again."
            )

    # -- manifest -------------------------------------------------------------------------
    def documents(self, *, pending_only: bool = False) -> list[DocumentRecord]:
        """Every document's record, by source; `pending_only`: those with a write in flight (or
        left by a killed run), read through a filter rather than the whole manifest."""
        where = {"pending_version": {"$ne": ""}} if pending_only else None
        records = [_record_from_meta(doc_id, meta) for doc_id, meta in self._iter_manifest(where)]
        return sorted(records, key=lambda r: r.source)

    def manifest_changes(self, since_ns: int) -> tuple[list[DocumentRecord], int]:
        """The records written at or after `since_ns` (a records' clock time), and how many records
        the manifest holds: a reader that knew every record before `since_ns` and sees fewer in all
        than it now knows has missed a removal."""
        changed = [_record_from_meta(d, m) for d, m in self._iter_manifest({UPDATED_KEY: {"$gte": since_ns}})]
        total = int(self._call(self._manifest.count))
        return changed, total - (1 if self.generation() else 0)

    def generation(self) -> str:
        """A token that changes with every manifest write ("" before the first one): equal tokens
        mean the same committed documents, whatever the manifest's size."""
        got = self._call(self._manifest.get, ids=[GENERATION_ID], include=["metadatas"])
        return str((got["metadatas"] or [{}])[0].get("token", "")) if got["ids"] else ""

    def _bump_generation(self) -> None:
        # After the manifest write it follows, never with it: a reader that sees the new token
        # then reads the manifest sees the write too.
        meta = {"token": uuid.uuid4().hex}
        self._call(self._manifest.upsert, ids=[GENERATION_ID], embeddings=[_MANIFEST_VECTOR], metadatas=[meta])

    def document(self, doc_id: str) -> DocumentRecord | None:
        got = self._call(self._manifest.get, ids=[doc_id], include=["metadatas"])
        if not got["ids"]:
            return None
        return _record_from_meta(got["ids"][0], (got["metadatas"] or [{}])[0])

    def put_document(self, record: DocumentRecord) -> None:
        self.put_documents([record])

    def put_documents(self, records: Sequence[DocumentRecord]) -> None:
        """Write manifest records (a bulk loader's many at once), then the change token."""
        metas = [asdict(record) | {UPDATED_KEY: time.time_ns()} for record in records]
        ids = [meta.pop("doc_id") for meta in metas]
        for start in range(0, len(ids), _MAX_BATCH):
            self._call(
                self._manifest.upsert,
                ids=ids[start : start + _MAX_BATCH],
                embeddings=[_MANIFEST_VECTOR] * len(ids[start : start + _MAX_BATCH]),
                metadatas=metas[start : start + _MAX_BATCH],
            )
        self._bump_generation()

    def remove_document_record(self, doc_id: str) -> None:
        self._call(self._manifest.delete, ids=[doc_id])
        self._bump_generation()

    def _iter_manifest(self, where: dict[str, Any] | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
        for got in self._pages(self._manifest, where=where, include=["metadatas"]):
            for doc_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                if doc_id != GENERATION_ID:
                    yield doc_id, dict(meta)

    def _pages(self, collection: Collection, **kwargs: Any) -> Iterator[Any]:
        """A whole (filtered) collection, one get() of at most _PAGE records at a time."""
        offset = 0
        while True:
            got = self._call(collection.get, limit=_PAGE, offset=offset, **kwargs)
            yield got
            if len(got["ids"]) < _PAGE:
                return
            offset += _PAGE

    # -- chunks ---------------------------------------------------------------------------
    def upsert_chunks(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        if self.dimension is not None and len(chunks) and embeddings.shape[1] != self.dimension:
            raise StoreError(f"embedding dimension {embeddings.shape[1]} != collection's {self.dimension}")
        step = _MAX_BATCH
        for start in range(0, len(chunks), step):
            part = chunks[start : start + step]
            self._call(
                self._chunks.upsert,
                ids=[c.id for c in part],
                embeddings=embeddings[start : start + step].astype(np.float32),
                documents=[c.text for c in part],
                metadatas=[c.metadata() for c in part],
            )

    def delete_chunks(self, doc_id: str, *, keep_version: str | None = None) -> None:
        """Delete a document's chunks, all of them or all but one version's."""
        where: dict[str, Any] = {"doc_id": doc_id}
        if keep_version:
            where = {"$and": [{"doc_id": doc_id}, {"version": {"$ne": keep_version}}]}
        self._call(self._chunks.delete, where=where)

    def chunk_ids(self, doc_id: str | None = None) -> list[str]:
        where = {"doc_id": doc_id} if doc_id else None
        return sorted(chunk_id for got in self._pages(self._chunks, where=where, include=[]) for chunk_id in got["ids"])

    def version_chunks(self, doc_id: str, version: str) -> Iterator[tuple[str, str, str]]:
        """(chunk id, text, heading) of one version of a document, in chunk order."""
        where = {"$and": [{"doc_id": doc_id}, {"version": version}]}
        rows: list[tuple[int, str, str, str]] = []
        for got in self._pages(self._chunks, where=where, include=["documents", "metadatas"]):
            for chunk_id, text, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True):
                rows.append((int(meta.get("chunk_index", 0)), chunk_id, text or "", str(meta.get("heading", ""))))
        for _, chunk_id, text, heading in sorted(rows):
            yield chunk_id, text, heading

    def passages(self, scored: Sequence[tuple[str, float]]) -> list[Passage]:
        """The visible chunks among (chunk id, score) pairs, in the given order, ranked from 1."""
        if not scored:
            return []
        got = self._call(self._chunks.get, ids=[chunk_id for chunk_id, _ in scored], include=["documents", "metadatas"])
        found = {
            chunk_id: (text or "", dict(meta))
            for chunk_id, text, meta in zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
        }
        hits = [(chunk_id, score, *found[chunk_id]) for chunk_id, score in scored if chunk_id in found]
        visible = self._visible([meta for *_, meta in hits])
        out: list[Passage] = []
        for (chunk_id, score, text, meta), shown in zip(hits, visible, strict=True):
            if shown:
                out.append(Passage(chunk_id, text, recall_rank=len(out) + 1, recall_score=score, metadata=meta))
        return out

    def count(self) -> int:
        return int(self._call(self._chunks.count))

    def export(self) -> dict[str, tuple[np.ndarray, dict[str, Any], str]]:
        """Every chunk as id -> (vector, metadata, text): for comparing two states of an index."""
        out: dict[str, tuple[np.ndarray, dict[str, Any], str]] = {}
        for got in self._pages(self._chunks, include=["embeddings", "metadatas", "documents"]):
            for i, chunk_id in enumerate(got["ids"]):
                out[chunk_id] = (
                    np.asarray(got["embeddings"][i], dtype=np.float32),
                    dict(got["metadatas"][i]),
                    got["documents"][i],
                )
        return out

    def query(self, embedding: np.ndarray, k: int, where: dict[str, Any] | None = None) -> list[Passage]:
        """Top-k visible chunks by cosine similarity.

        Chunks of a version the manifest does not name (a write in flight, or left by a killed
        run) are dropped, and the search widened so that k visible hits come back when they exist.
        """
        if k <= 0:
            return []
        # No count() first: Chroma answers an over-long n_results with what it has, and counting a
        # collection costs more than the search itself at a million chunks.
        want, retries = k, 0
        while True:
            got = self._call(
                self._chunks.query,
                query_embeddings=[np.asarray(embedding, dtype=np.float32)],
                n_results=want,
                where=where,
                include=["metadatas", "documents", "distances"],
            )
            ids = got["ids"][0]
            metas = [dict(m) for m in (got["metadatas"] or [[]])[0]]
            texts = (got["documents"] or [[]])[0]
            distances = (got["distances"] or [[]])[0]
            committed = self._committed(metas)
            keep = [i for i, meta in enumerate(metas) if _is_committed(meta, committed)]
            exhausted = len(ids) < want  # Chroma has nothing more (not the count read above, see below)
            if exhausted and retries < _SWITCH_RETRIES and _switched_meanwhile(metas, keep, committed):
                retries += 1  # a document's new version was committed between the query and now
                continue
            # Fewer than asked: Chroma has nothing more (a count read before the query could be out
            # of date: a write landing since would stop the widening short).
            if len(keep) >= k or exhausted:
                break
            want += 2 * (len(ids) - len(keep)) + k
        return [
            Passage(
                chunk_id=ids[i],
                text=texts[i] or "",
                recall_rank=rank,
                recall_score=1.0 - float(distances[i]),
                dense_score=1.0 - float(distances[i]),
                metadata=metas[i],
            )
            for rank, i in enumerate(keep[:k], start=1)
        ]

    def _visible(self, metas: Sequence[dict[str, Any]]) -> list[bool]:
        """For each chunk's metadata: is it of the version its document's manifest record names?"""
        committed = self._committed(metas)
        return [_is_committed(meta, committed) for meta in metas]

    def _committed(self, metas: Sequence[dict[str, Any]]) -> dict[str, str]:
        """doc id -> the version its manifest record names, for the documents of these chunks."""
        doc_ids = sorted({str(m.get("doc_id", "")) for m in metas})
        if not doc_ids:
            return {}
        got = self._call(self._manifest.get, ids=doc_ids, include=["metadatas"])
        return {
            doc_id: str(meta.get("version", ""))
            for doc_id, meta in zip(got["ids"], got["metadatas"] or [], strict=True)
        }

    @staticmethod
    def _call(fn: Any, /, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ValueError, TypeError):
            raise
        except Exception as exc:
            raise _store_error(f"Chroma {getattr(fn, '__name__', 'call')} failed", exc) from exc


_RECORD_FIELDS = {f.name for f in fields(DocumentRecord)}


def _store_error(what: str, exc: Exception) -> StoreError:
    """A transport failure (refused, dropped, timed out) is the server's absence, not our bug."""
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return StoreUnavailable(f"{what}: the Chroma server did not answer in time")
    if isinstance(exc, httpx.TransportError):
        return StoreUnavailable(f"{what}: the Chroma server is unreachable ({exc})")
    return StoreError(f"{what}: {exc}")


def _limit_time(client: Any, timeout_s: float) -> None:
    """Chroma's HTTP client is made with timeout=None and offers no setting for it (chromadb
    1.5.9): set one on its httpx session, the only handle there is."""
    import httpx

    session = getattr(getattr(client, "_server", None), "_session", None)
    if isinstance(session, httpx.Client):
        session.timeout = httpx.Timeout(timeout_s)
    else:
        log.warning("cannot set a timeout on this Chroma client: a hung Chroma server would hang requests")


def _record_from_meta(doc_id: str, meta: dict[str, Any]) -> DocumentRecord:
    values = {k: v for k, v in meta.items() if k in _RECORD_FIELDS}
    return DocumentRecord(doc_id=doc_id, **values)


def _is_committed(meta: dict[str, Any], committed: dict[str, str]) -> bool:
    return committed.get(str(meta.get("doc_id", ""))) == meta.get("version")


def _switched_meanwhile(metas: Sequence[dict[str, Any]], keep: Sequence[int], committed: dict[str, str]) -> bool:
    """Whether a document was switched to a new version between the chunk query and the manifest
    read: a complete result (every chunk there was) holds chunks of it, but none of the version its
    record now names. Without a second query that document would vanish from this result."""
    shown = {str(metas[i].get("doc_id", "")) for i in keep}
    return any(committed.get(doc) and doc not in shown for doc in {str(m.get("doc_id", "")) for m in metas})
