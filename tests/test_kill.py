"""kill -9 in the middle of a real `rag ingest` run, then run it again: the clean-run state."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from chromadb.api.client import SharedSystemClient

from rag.lexical.index import LexicalIndexes
from rag.store import KnowledgeBase, VectorStore

from .conftest import OFFLINE_PROFILE, PROJECT, offline_settings, run_cli

pytestmark = pytest.mark.slow


def ingest_env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_CONFIG": str(OFFLINE_PROFILE)}


def open_fresh(data_dir: Path) -> KnowledgeBase:
    """Embedded Chroma caches a store per path in-process; another process has written since."""
    SharedSystemClient.clear_system_cache()
    return VectorStore(offline_settings(data_dir)).open("default")


def snapshot(data_dir: Path) -> dict[str, tuple[np.ndarray, dict, str]]:
    kb = open_fresh(data_dir)
    return {
        cid: (vec, {k: v for k, v in meta.items() if k != "ingested_at"}, text)
        for cid, (vec, meta, text) in kb.export().items()
    }


def bm25_snapshot(data_dir: Path) -> dict[str, list[str]]:
    settings = offline_settings(data_dir)
    return LexicalIndexes(settings).get(open_fresh(data_dir)).snapshot()


def test_kill_during_a_write_then_rerun_equals_a_clean_run(corpus: Path, corpus_index, tmp_path: Path) -> None:
    files = [
        str(corpus / "zh" / "PRC_Data_Security_Law.pdf"),
        str(corpus / "en" / "SP800-40r3.pdf"),
        str(corpus / "zh" / "PRC_Cybersecurity_Law.pdf"),
    ]
    killed_dir = tmp_path / "killed"
    rag = str(Path(sys.executable).with_name("rag"))
    process = subprocess.Popen(
        [rag, "-v", "ingest", *files],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=ingest_env(killed_dir),
        cwd=PROJECT,
    )
    writes = 0
    deadline = time.monotonic() + 300
    assert process.stderr is not None
    for line in process.stderr:  # ends when the process does; bounded by the deadline below
        if "writing" in line and "chunks of" in line:
            writes += 1
            if writes == 2:  # the NIST report: its chunks are being written right now
                process.send_signal(signal.SIGKILL)
                break
        assert time.monotonic() < deadline, "ingest never reached its second document"
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    # What queries may see right after the kill: only whole documents.
    kb = open_fresh(killed_dir)
    exported = kb.export()
    for record in kb.documents():
        if record.version:
            committed = [
                c
                for c, (_, m, _) in exported.items()
                if m["doc_id"] == record.doc_id and m["version"] == record.version
            ]
            assert len(committed) == record.chunks
    visible_docs = {r.doc_id for r in kb.documents() if r.version}
    probe = next(iter(exported.values()))[0]
    assert {h.metadata["doc_id"] for h in kb.query(probe, 500)} <= visible_docs

    rerun = run_cli("ingest", *files, env=ingest_env(killed_dir))
    assert rerun.returncode == 0, rerun.stderr

    # The clean run of the same files with the same profile: corpus_index ingested them (among others).
    clean_dir, _ = corpus_index
    killed_state = snapshot(killed_dir)
    doc_ids = {meta["doc_id"] for _, meta, _ in killed_state.values()}
    assert len(doc_ids) == 3
    clean_state = {cid: row for cid, row in snapshot(clean_dir).items() if row[1]["doc_id"] in doc_ids}
    assert sorted(killed_state) == sorted(clean_state)
    for chunk_id, (vector, meta, text) in clean_state.items():
        np.testing.assert_array_equal(killed_state[chunk_id][0], vector)
        assert killed_state[chunk_id][1:] == (meta, text)
    # The BM25 index beside it holds the same terms for the same chunks.
    killed_terms = bm25_snapshot(killed_dir)
    assert killed_terms == {cid: terms for cid, terms in bm25_snapshot(clean_dir).items() if cid in clean_state}
    # Idempotent from here on: a third run writes nothing.
    third = run_cli("--config", str(OFFLINE_PROFILE), "ingest", "--json", *files, env={"RAG_DATA_DIR": str(killed_dir)})
    assert '"unchanged": 3' in third.stdout
