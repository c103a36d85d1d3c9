"""A full disk and a read-only data folder under a real `rag ingest`: a clear error per file or per
run, nothing half-written, the index as it was, and whole again once there is room."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support.processes import run_cli
from .support.profiles import PROJECT, offline_env
from .support.store_state import assert_same_chunks, snapshot

pytestmark = pytest.mark.slow


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 200 MB tmpfs of our own, so filling it harms nothing else."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        mount("-t", "tmpfs", "-o", "size=200m", "tmpfs", str(disk))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {exc}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


def ingest(data_dir: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("ingest", "--json", *map(str, files), env=offline_env(data_dir))


def search(data_dir: Path, query: str) -> subprocess.CompletedProcess[str]:
    return run_cli("search", query, "--json", env=offline_env(data_dir))


RUNBOOK = PROJECT / "data" / "it-runbook-vpn.md"
FAQ = PROJECT / "data" / "sales-faq.txt"


def test_a_full_disk_fails_each_file_clearly_and_leaves_the_index_readable(small_disk: Path, corpus: Path) -> None:
    data_dir = small_disk / "index"
    assert ingest(data_dir, RUNBOOK).returncode == 0
    before = snapshot(data_dir)
    filler = small_disk / "filler"
    with filler.open("wb") as out:  # leave 50 MB: under ingest.min_free_disk_mb (100)
        while shutil.disk_usage(small_disk).free > 50 * 2**20:
            out.write(b"\0" * 2**20)
    full = ingest(data_dir, FAQ, corpus / "zh" / "PRC_Data_Security_Law.pdf")
    assert full.returncode == 3, full.stderr
    outcomes = json.loads(full.stdout)["outcomes"]
    assert [o["status"] for o in outcomes] == ["failed", "failed"]
    assert all("not enough disk space" in o["reason"] and "nothing was written" in o["reason"] for o in outcomes)
    assert_same_chunks(snapshot(data_dir), before)
    found = search(data_dir, "VPN error 809")  # the index still answers on the full disk
    assert found.returncode == 0 and json.loads(found.stdout)["passages"][0]["file"] == RUNBOOK.name

    filler.unlink()
    again = ingest(data_dir, FAQ, corpus / "zh" / "PRC_Data_Security_Law.pdf")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["files"]["added"] == 2


def test_a_read_only_data_folder_is_a_clear_error_and_changes_nothing(small_disk: Path) -> None:
    data_dir = small_disk / "index"
    assert ingest(data_dir, RUNBOOK).returncode == 0
    before = snapshot(data_dir)
    # A read-only bind mount over the data folder (this process still holds Chroma's files open).
    mount("--bind", str(data_dir), str(data_dir))
    try:
        mount("-o", "remount,ro,bind", str(data_dir))
        refused = ingest(data_dir, FAQ)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "is read-only" in refused.stderr, refused.stderr
    finally:
        subprocess.run(["umount", str(data_dir)], check=True, capture_output=True, timeout=30)
    assert_same_chunks(snapshot(data_dir), before)
