"""The store contract, run against an embedded Chroma and a real `chroma run` on 127.0.0.1."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.config import load_settings
from rag.errors import ConfigError
from rag.store import VectorStore
from rag.types import Chunk, DocumentRecord

from .support.profiles import offline_settings

DIM = 8


def make_chunks(doc_id: str, version: str, n: int) -> list[Chunk]:
    return [
        Chunk(
            id=f"{doc_id}:{version}:{i:05d}",
            text=f"{doc_id} chunk {i} of {version}",
            doc_id=doc_id,
            version=version,
            source=f"/docs/{doc_id}.pdf",
            file_type="pdf",
            chunk_index=i,
            char_start=i * 10,
            char_end=i * 10 + 9,
            pages=(i + 1, i + 2),
            heading_path=("1 Intro", "1.1 Scope"),
        )
        for i in range(n)
    ]


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(params=["embedded", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    environ = {"RAG_DATA_DIR": str(tmp_path / "data")}
    if request.param == "server":
        environ["RAG_CHROMA__URL"] = request.getfixturevalue("chroma_server")
    return VectorStore(load_settings(environ=environ))


class TestKnowledgeBase:
    def test_collection_is_cosine_and_remembers_its_model(self, store: VectorStore) -> None:
        kb = store.open("kb-one", embedding_model="m", dimension=DIM, create=True)
        config = kb._chunks.configuration
        assert config["hnsw"]["space"] == "cosine"
        assert config["embedding_function"] is None
        assert store.open("kb-one").embedding_model == "m"
        with pytest.raises(ConfigError, match="holds vectors of 'm'"):
            store.open("kb-one", embedding_model="other", dimension=DIM, create=True)
        assert store.list_knowledge_bases() == ["kb-one"]

    def test_missing_collection_and_bad_names(self, store: VectorStore) -> None:
        with pytest.raises(ConfigError, match="no knowledge base"):
            store.open("absent")
        for bad in ("a", "has space", "x__manifest", "-lead"):
            with pytest.raises(ConfigError, match="invalid collection name"):
                store.open(bad, embedding_model="m", dimension=DIM, create=True)

    def test_a_version_committed_while_a_query_runs_is_found_not_lost(self, store: VectorStore) -> None:
        """The race a busy server met: the query reads version 1's chunks, then an ingest commits
        version 2 and deletes version 1 before the manifest is read. The document must not vanish."""
        kb = store.open("kb-race", embedding_model="m", dimension=DIM, create=True)
        record = DocumentRecord(doc_id="doc", source="/docs/doc.pdf", file_type="pdf", size=1, sha256="s")
        kb.upsert_chunks(make_chunks("doc", "v1", 3), vectors(3, 1))
        kb.put_document(replace(record, version="v1"))
        read_manifest = kb._committed
        writes = []

        def commit_v2_first(metas):  # the ingest's steps 2-4 land between the query and this read
            if not writes:
                writes.append("v2")
                kb.upsert_chunks(make_chunks("doc", "v2", 3), vectors(3, 2))
                kb.put_document(replace(record, version="v2"))
                kb.delete_chunks("doc", keep_version="v2")
            return read_manifest(metas)

        kb._committed = commit_v2_first  # type: ignore[method-assign]
        hits = kb.query(vectors(1, 1)[0], 10)
        assert writes == ["v2"] and sorted(p.chunk_id for p in hits) == [f"doc:v2:{i:05d}" for i in range(3)]

    def test_query_returns_only_committed_versions(self, store: VectorStore) -> None:
        kb = store.open("kb-test", embedding_model="m", dimension=DIM, create=True)
        committed = make_chunks("doc", "v1", 3)
        kb.upsert_chunks(committed, vectors(3, 1))
        record = DocumentRecord(doc_id="doc", source="/docs/doc.pdf", file_type="pdf", size=1, sha256="s")
        # Written but not committed: invisible.
        assert kb.query(vectors(1, 1)[0], 5) == []
        kb.put_document(replace(record, version="v1", chunks=3))
        hits = kb.query(vectors(1, 1)[0], 5)
        assert hits[0].chunk_id == "doc:v1:00000"
        assert hits[0].recall_score == pytest.approx(1.0, abs=1e-5) and hits[0].recall_rank == 1
        assert hits[0].metadata["pages"] == [1, 2] and hits[0].metadata["heading"] == "1 Intro > 1.1 Scope"
        # A newer version half-written beside it (a killed run) stays hidden, and k is still filled.
        kb.upsert_chunks(make_chunks("doc", "v2", 2), vectors(2, 1))
        hits = kb.query(vectors(1, 1)[0], 3)
        assert sorted(h.chunk_id for h in hits) == [c.id for c in committed]
        kb.delete_chunks("doc", keep_version="v1")
        assert kb.chunk_ids() == [c.id for c in committed]

    def test_manifest_round_trip_and_filters(self, store: VectorStore) -> None:
        kb = store.open("kb-test", embedding_model="m", dimension=DIM, create=True)
        for name, seed in (("a", 1), ("b", 2)):
            kb.upsert_chunks(make_chunks(name, "v", 2), vectors(2, seed))
            kb.put_document(
                DocumentRecord(
                    doc_id=name, source=f"/docs/{name}.pdf", file_type="pdf", size=3, sha256="x", version="v"
                )
            )
        assert [r.doc_id for r in kb.documents()] == ["a", "b"]
        assert kb.document("a") == DocumentRecord(
            doc_id="a", source="/docs/a.pdf", file_type="pdf", size=3, sha256="x", version="v"
        )
        hits = kb.query(vectors(1, 1)[0], 10, where={"doc_id": "b"})
        assert {h.metadata["doc_id"] for h in hits} == {"b"}
        kb.remove_document_record("a")
        kb.delete_chunks("a")
        assert kb.document("a") is None and kb.count() == 2

    @pytest.mark.slow
    def test_large_writes_are_batched(self, store: VectorStore) -> None:
        kb = store.open("kb-test", embedding_model="m", dimension=DIM, create=True)
        chunks = make_chunks("big", "v", 5600)  # over Chroma's 5461 per call
        kb.upsert_chunks(chunks, vectors(5600, 3))
        assert kb.count() == 5600
        exported = kb.export()
        assert len(exported) == 5600
        np.testing.assert_allclose(exported["big:v:05599"][0], vectors(5600, 3)[5599], atol=1e-6)


def test_many_threads_opening_one_embedded_store_at_once(tmp_path: Path) -> None:
    """The first requests to a fresh API process arrive together: each thread may be the one that
    starts Chroma. Before the connect lock this failed inside Chroma's start-up."""
    store = VectorStore(offline_settings(tmp_path / "ix"))
    barrier = threading.Barrier(8)

    def first_use() -> list[str]:
        barrier.wait(timeout=30)
        return store.list_knowledge_bases()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [future.result(timeout=60) for future in [pool.submit(first_use) for _ in range(8)]]
    assert results == [[]] * 8
