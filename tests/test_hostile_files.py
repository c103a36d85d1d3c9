"""Hostile files through the real `rag ingest`: each fails alone with one clear reason, within the
parser's time and memory fences, and the rest of the batch is ingested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest._parse import ParseLimits, parse_all
from ingest.loaders import LoadOptions, ocr
from rag.errors import LoadError

from .support.hostile_files import hostile_files, text_pdf
from .support.profiles import OFFLINE_PROFILE, PROJECT

pytestmark = pytest.mark.slow

# What each built file must fail with (a fragment of its reason); None: it must be ingested.
EXPECTED = {
    "truncated-10.pdf": "corrupt or truncated PDF",
    "truncated-50.pdf": "corrupt or truncated PDF",
    "truncated-90.pdf": "corrupt or truncated PDF",
    "flipped-1000.pdf": "corrupt or truncated PDF",
    "looping-page-tree.pdf": "cyclic page references",
    "decompression-bomb.pdf": "decompression bomb",
    "two-thousand-pages.pdf": None,
    # Scans: read by OCR where the extra is installed, within its page limit and at a bounded scale.
    "two-thousand-page-scan.pdf": "ingest.ocr_max_pages" if ocr.available() else "install the 'ocr' extra",
    "giant-page-scan.pdf": None if ocr.available() else "install the 'ocr' extra",
    "fifty-megabytes.txt": "over ingest.max_file_mb",
    "binary-junk.md": "binary content, not text",
    "invalid-utf8.txt": "not valid UTF-8",
    "zip-bomb.docx": "refused as a zip bomb",
    "good-runbook.md": None,
}
# The one file the seed leaves readable after 10 flipped bits: it may load, or fail with a reason.
EITHER = {"flipped-10.pdf"}


@pytest.fixture(scope="module")
def hostile_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    for name, data in hostile_files([corpus / "en" / "SP800-40r3.pdf", corpus / "zh" / "PRC_Cybersecurity_Law.pdf"]):
        (folder / name).write_bytes(data)
    (folder / "good-runbook.md").write_text(
        "# VPN runbook\n\nIf the VPN client shows error 809, open UDP ports 500 and 4500 on the home router.\n"
    )
    return folder


def expected_for(name: str) -> str | None:
    return next(reason for suffix, reason in EXPECTED.items() if name.endswith(suffix))


def test_a_hostile_batch_fails_file_by_file_and_the_rest_is_ingested(
    hostile_dir: Path, corpus: Path, tmp_path: Path
) -> None:
    # The 50 MB file is refused by size: on a CPU its ~35,000 chunks would embed for half an hour.
    # Its parse alone is fenced below.
    env = {
        **os.environ,
        "RAG_CONFIG": str(OFFLINE_PROFILE),
        "RAG_DATA_DIR": str(tmp_path / "index"),
        "RAG_INGEST__MAX_FILE_MB": "20",
    }
    # The wrapper reports the peak resident memory of the ingest and its parse workers.
    measure = (
        "import json, resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
        "print(json.dumps({'rc': r.returncode, 'out': r.stdout, 'err': r.stderr, "
        "'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024}))"
    )
    rag = str(Path(sys.executable).with_name("rag"))
    started = time.monotonic()
    wrapper = subprocess.run(
        [sys.executable, "-c", measure, rag, "ingest", "--json", str(hostile_dir), str(corpus / "nasty")],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=900,
    )
    seconds = time.monotonic() - started
    result = json.loads(wrapper.stdout)
    assert result["rc"] == 3, result["err"]  # some files failed, the others were ingested
    assert "Traceback" not in result["err"], result["err"]
    report = json.loads(result["out"])
    outcomes = {Path(f["path"]).name: f for f in report["outcomes"]}
    assert set(outcomes) == {p.name for p in hostile_dir.iterdir()} | {p.name for p in (corpus / "nasty").iterdir()}
    for name, outcome in outcomes.items():
        if outcome["status"] == "failed":
            assert outcome["reason"] and "\n" not in outcome["reason"], name
        if name.endswith(tuple(EITHER)) or not (hostile_dir / name).exists():
            assert outcome["status"] in {"added", "failed"}, (name, outcome)
            continue
        expected = expected_for(name)
        if expected is None:
            assert outcome["status"] == "added", (name, outcome)
        else:
            assert outcome["status"] == "failed" and expected in outcome["reason"], (name, outcome)
    assert outcomes["two-thousand-pages.pdf"]["pages"] == 2000
    # One fence for the whole batch: the ingest plus its parse workers stayed under 2.5 GB.
    assert result["peak_mb"] < 2560, result["peak_mb"]
    for name, outcome in sorted(outcomes.items()):
        print(f"{name:45} {outcome['status']:8} {outcome['seconds']:6.1f}s {outcome['reason']}")
    print(f"\nhostile batch: {len(outcomes)} files in {seconds:.0f}s, peak RSS {result['peak_mb']} MB")


def test_a_file_past_the_parse_time_fence_fails_alone(hostile_dir: Path) -> None:
    paths = [hostile_dir / "two-thousand-pages.pdf", hostile_dir / "good-runbook.md"]
    results = dict(parse_all(paths, options=LoadOptions(), workers=1, limits=ParseLimits(timeout_s=0.5)))
    failed = results[paths[0]]
    assert isinstance(failed, LoadError) and "parsing took longer than 0.5s" in failed.reason
    assert not isinstance(results[paths[1]], LoadError)  # a fresh worker parsed the next file


def test_a_file_past_the_parse_memory_fence_fails_alone(hostile_dir: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.pdf"
    small.write_bytes(text_pdf(["Rotate the backup tapes every Friday."]))
    paths = [hostile_dir / "fifty-megabytes.txt", small]
    fenced = dict(parse_all(paths, options=LoadOptions(), workers=1, limits=ParseLimits(memory_mb=300)))
    failed = fenced[paths[0]]
    assert isinstance(failed, LoadError) and "memory cap" in failed.reason
    assert "backup tapes" in fenced[small].sections[0].text  # type: ignore[union-attr]
    # Under the default fence the same 50 MB file parses: the cap, not the file, failed it.
    assert not isinstance(dict(parse_all(paths[:1], options=LoadOptions(), workers=1))[paths[0]], LoadError)


def test_a_parse_worker_whose_ingest_died_while_it_started_exits() -> None:
    """The worker checks for the ingest by the pid the ingest gave it: started for a process that is
    gone (pid 1 stands for it: it is not the worker's parent), it exits at once instead of waiting
    forever; started for its real parent, it stays."""
    code = (
        "import sys, time; from ingest._parse import _start_worker; "
        "_start_worker(512, int(sys.argv[1])); time.sleep(60)"
    )
    orphan = subprocess.run([sys.executable, "-c", code, "1"], cwd=PROJECT, timeout=30)
    assert orphan.returncode == 1
    child = subprocess.Popen([sys.executable, "-c", code, str(os.getpid())], cwd=PROJECT)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(timeout=5)
    finally:
        child.kill()
        child.wait()
