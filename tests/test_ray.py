"""Ingestion on Ray (`rag ingest --ray`): a real local Ray cluster on 127.0.0.1 with two worker slots,
a real `chroma run`, the real CLI. Skips where the 'distributed' extra (Ray) is not installed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.distributed import RayExecutor
from ingest.loaders import LoadOptions
from ingest.pipeline import IngestReport, PlannedFile
from rag.errors import ConfigError
from rag.lexical.index import LexicalIndexes
from rag.store import VectorStore

from .support.processes import free_port, run_cli
from .support.profiles import offline_env, offline_settings
from .support.store_state import assert_same_chunks, chunk_state

WORKER_TITLE = "ray::IngestWorker.ingest"  # what Ray names an actor's process while a method runs


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """`ray start --head` on 127.0.0.1 with 2 CPUs (two ingest workers), stopped afterwards."""
    pytest.importorskip("ray", reason="Ray is not installed (the 'distributed' extra)")
    ray = Path(sys.executable).with_name("ray")
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    command = [str(ray), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2"]
    command += ["--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"]
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray), "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def documents(corpus: Path, tmp_path: Path) -> Path:
    """Four real PDFs, English and Chinese (two batches, one a worker): enough work that a worker
    can be killed in the middle."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for path in [corpus / "en" / "SP800-40r3.pdf", *(corpus / "zh").glob("*.pdf")]:
        (folder / path.name).symlink_to(path)
    return folder


def ray_ingest(data_dir: Path, chroma: str, address: str, folder: Path, collection: str) -> dict:
    env = {**offline_env(data_dir), "RAG_CHROMA__URL": chroma}
    result = run_cli("ingest", "--json", "--ray", address, "--collection", collection, str(folder), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def worker_processes() -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(WORKER_TITLE.encode()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_a_worker_killed_mid_run_and_the_rerun_equal_a_clean_run(
    ray_cluster: str, chroma_server: str, documents: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    clean = ray_ingest(data_dir, chroma_server, ray_cluster, documents, "clean")
    files = len(list(documents.iterdir()))
    assert clean["files"] == {**clean["files"], "added": files, "failed": 0}

    env = {**os.environ, **offline_env(data_dir), "RAG_CHROMA__URL": chroma_server}
    rag = Path(sys.executable).with_name("rag")
    command = [str(rag), "ingest", "--json", "--ray", ray_cluster, "--collection", "killed", str(documents)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as run:
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and run.poll() is None:
            busy = worker_processes()
            if busy:
                time.sleep(0.5)  # into its batch: parsing, embedding or writing
                if busy[0] in worker_processes():  # still at it
                    killed = busy[0]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = run.communicate(timeout=600)
    assert killed is not None, "no Ray worker was seen at work"
    first = json.loads(stdout)
    # Ray restarted the killed worker and ran its batch again: any file still failed says so.
    assert all(o["status"] == "added" or "Ray worker failed" in o["reason"] for o in first["outcomes"]), stderr

    rerun = ray_ingest(data_dir, chroma_server, ray_cluster, documents, "killed")
    assert rerun["files"]["failed"] == 0
    assert rerun["files"]["unchanged"] + rerun["files"]["added"] == files

    settings = offline_settings(data_dir, RAG_CHROMA__URL=chroma_server)
    store = VectorStore(settings)
    clean_kb, killed_kb = store.open("clean"), store.open("killed")
    assert_same_chunks(chunk_state(killed_kb), chunk_state(clean_kb))
    assert [(r.doc_id, r.version, r.pending_version) for r in killed_kb.documents()] == [
        (r.doc_id, r.version, "") for r in clean_kb.documents()
    ]
    indexes = LexicalIndexes(settings)
    assert indexes.get(killed_kb).snapshot() == indexes.get(clean_kb).snapshot()
    hits = killed_kb.passages(indexes.get(killed_kb).search("patch management technologies", 3))
    assert hits and hits[0].file_name == "SP800-40r3.pdf"


@pytest.mark.slow
def test_ray_needs_a_chroma_server(ray_cluster: str, documents: Path, tmp_path: Path) -> None:
    result = run_cli("ingest", "--ray", ray_cluster, str(documents), env=offline_env(tmp_path / "data"))
    assert result.returncode == 2, result.stderr
    assert "needs a Chroma server (chroma.url)" in result.stderr


def test_without_ray_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an installation without the extra has
    settings = offline_settings(tmp_path / "data", RAG_CHROMA__URL="http://127.0.0.1:9")
    item = PlannedFile(tmp_path / "a.txt", "0" * 16, "", 1, "1" * 16, None)
    with pytest.raises(ConfigError, match=r"pip install 'rag-kb\[distributed\]'"):
        RayExecutor("127.0.0.1:6379").ingest(settings, "default", [item], LoadOptions(), IngestReport("default"), print)
