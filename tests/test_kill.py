"""kill -9 at 10 random points of a real multi-file `rag ingest`, each followed by the next run:
after every kill queries see exactly a clean run's documents, and the last run ends in the clean
run's state (ids, vectors, metadata, text, BM25 terms)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.manifest import document_id

from .support.processes import run_cli
from .support.profiles import OFFLINE_PROFILE, PROJECT, offline_env
from .support.store_state import assert_same_chunks, bm25_snapshot, open_fresh, snapshot

pytestmark = pytest.mark.slow


KILLS = 10
SEED = int(os.environ.get("RAG_KILL_SEED", "2026"))


def visible_state(data_dir: Path) -> tuple[dict[str, tuple[np.ndarray, dict, str]], dict[str, list[str]]]:
    """What a query may see: chunks of committed versions only (and their BM25 terms)."""
    kb = open_fresh(data_dir)
    committed = {(r.doc_id, r.version) for r in kb.documents() if r.version}
    everything = snapshot(data_dir, kb)
    chunks = {cid: row for cid, row in everything.items() if (row[1]["doc_id"], row[1]["version"]) in committed}
    probe = next(iter(chunks.values()))[0] if chunks else None
    if probe is not None:  # and the vector index agrees: no hit outside the committed versions
        assert {h.metadata["doc_id"] for h in kb.query(probe, 500)} <= {doc for doc, _ in committed}
    return chunks, bm25_snapshot(data_dir, kb)


def kill_at(files: list[str], data_dir: Path, log: Path, delay_s: float) -> str | None:
    """Start `rag ingest`, SIGKILL it `delay_s` after its model is loaded; the last log line
    before the kill says where it was, None if it finished first."""
    rag = str(Path(sys.executable).with_name("rag"))
    with log.open("w") as err:
        process = subprocess.Popen(
            [rag, "-v", "ingest", *files],
            stderr=err,
            stdout=subprocess.DEVNULL,
            env={**os.environ, **offline_env(data_dir)},
            cwd=PROJECT,
        )
    try:
        deadline = time.monotonic() + 180
        while "embedding model" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, "the ingest never loaded its model"
            time.sleep(0.05)
        time.sleep(delay_s)
        if process.poll() is not None:
            return None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.startswith("INFO")]
    return lines[-1].split(": ", 1)[-1][:60] if lines else "start-up"


def test_ten_kills_across_a_multi_file_run_each_leave_a_clean_state(corpus: Path, corpus_index, tmp_path: Path) -> None:
    files = [
        str(corpus / "zh" / "PRC_Data_Security_Law.pdf"),
        str(corpus / "en" / "SP800-40r3.pdf"),
        str(corpus / "zh" / "PRC_Cybersecurity_Law.pdf"),
    ]
    # The clean run of the same files with the same profile: corpus_index ingested them (among others).
    clean_dir, clean_report = corpus_index
    doc_ids = {document_id(Path(f)) for f in files}
    clean_chunks = {cid: row for cid, row in snapshot(clean_dir).items() if row[1]["doc_id"] in doc_ids}
    clean_terms = {cid: terms for cid, terms in bm25_snapshot(clean_dir).items() if cid in clean_chunks}
    assert {row[1]["doc_id"] for row in clean_chunks.values()} == doc_ids

    chunks_per_s = clean_report["chunks"] / clean_report["seconds"]
    rng = random.Random(SEED)
    killed_dir = tmp_path / "killed"
    where: list[str] = []
    done: set[str] = set()  # documents committed so far in this chain of killed runs
    for _ in range(3 * KILLS):  # a run that finishes before its kill point starts the chain again
        if len(where) == KILLS:
            break
        # Somewhere in the work left: its chunks at the rate the clean run went on this machine, plus a
        # second of parsing. (A fixed rate made too many runs finish before their kill on a fast day.)
        left = sum(1 for _, meta, _ in clean_chunks.values() if meta["doc_id"] not in done)
        point = kill_at(files, killed_dir, tmp_path / "ingest.log", rng.uniform(0.0, 1.0 + left / chunks_per_s))
        if point is None:
            shutil.rmtree(killed_dir)
            done = set()
            continue
        where.append(point)
        # After every kill, what queries can see is exactly the clean run's, document for document.
        chunks, terms = visible_state(killed_dir)
        assert chunks.keys() <= clean_chunks.keys()
        assert_same_chunks(chunks, {cid: clean_chunks[cid] for cid in chunks})
        assert terms == {cid: clean_terms[cid] for cid in chunks}
        done = {meta["doc_id"] for _, meta, _ in chunks.values()}
    assert len(where) == KILLS, f"only {len(where)} kills (seed {SEED})"
    print(f"\nkill points (seed {SEED}), the last log line before each kill:\n" + "\n".join(where))

    rerun = run_cli("ingest", *files, env=offline_env(killed_dir))
    assert rerun.returncode == 0, rerun.stderr
    chunks, terms = visible_state(killed_dir)
    assert sorted(snapshot(killed_dir)) == sorted(clean_chunks)  # nothing half-written left over either
    assert_same_chunks(chunks, clean_chunks)
    assert terms == clean_terms
    # Idempotent from here on: a third run writes nothing.
    third = run_cli("--config", str(OFFLINE_PROFILE), "ingest", "--json", *files, env={"RAG_DATA_DIR": str(killed_dir)})
    assert '"unchanged": 3' in third.stdout
