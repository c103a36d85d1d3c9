"""What "the same index" means to a test: every chunk as (vector, metadata, text), and the BM25
terms, read from a store another process may have written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from chromadb.api.client import SharedSystemClient

from rag.lexical.index import LexicalIndexes
from rag.store import KnowledgeBase, VectorStore

from .profiles import offline_settings

ChunkState = dict[str, tuple[np.ndarray, dict, str]]


def chunk_state(kb: KnowledgeBase) -> ChunkState:
    """Every chunk (committed or not): id -> (vector, metadata without the ingest time, text)."""
    return {
        cid: (vec, {k: v for k, v in meta.items() if k != "ingested_at"}, text)
        for cid, (vec, meta, text) in kb.export().items()
    }


def assert_same_chunks(actual: ChunkState, expected: ChunkState) -> None:
    """The same chunk ids, vectors bit for bit, metadata and text."""
    assert sorted(actual) == sorted(expected)
    for chunk_id, (vector, meta, text) in expected.items():
        np.testing.assert_array_equal(actual[chunk_id][0], vector)
        assert actual[chunk_id][1:] == (meta, text)


def open_fresh(data_dir: Path) -> KnowledgeBase:
    """Embedded Chroma caches a store per path in-process; another process has written since."""
    SharedSystemClient.clear_system_cache()
    return VectorStore(offline_settings(data_dir)).open("default")


def snapshot(data_dir: Path, kb: KnowledgeBase | None = None) -> ChunkState:
    return chunk_state(kb or open_fresh(data_dir))


def bm25_snapshot(data_dir: Path, kb: KnowledgeBase | None = None) -> dict[str, list[str]]:
    settings = offline_settings(data_dir)
    return LexicalIndexes(settings).get(kb or open_fresh(data_dir)).snapshot()
