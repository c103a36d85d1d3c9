"""The `rag` command as users run it: real subprocesses, the offline profile, the real corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.loaders import ocr
from rag.store import VectorStore

from .support.processes import run_cli
from .support.profiles import offline_env, offline_settings

NASTY_FAILURES = {
    "DERIVED_SP800-61rev2_truncated_60pct.pdf": "corrupt or truncated PDF",
    "empty.pdf": "empty file",
    "not-a-pdf.pdf": "not a PDF",
    "pdfminer_aes-256.pdf": "password",
    "pypdfsamples_unreadablemetadata.pdf": "corrupt or truncated PDF",
}
if not ocr.available():  # the scanned page is read where the ocr extra is installed
    NASTY_FAILURES["image.pdf"] = "no text layer"


@pytest.mark.slow
class TestCorpusIngest:
    def test_every_good_file_in_with_pages_and_every_bad_one_with_a_reason(self, corpus_index, corpus: Path) -> None:
        data_dir, report = corpus_index
        outcomes = {Path(o["path"]).name: o for o in report["outcomes"]}
        good = [p.name for p in corpus.rglob("*.pdf") if p.name not in NASTY_FAILURES]
        assert len(good) == 21 - len(NASTY_FAILURES)  # 21 PDFs
        for name in good:
            assert outcomes[name]["status"] == "added", outcomes[name]
            assert outcomes[name]["chunks"] > 0
        for name, reason in NASTY_FAILURES.items():
            assert outcomes[name]["status"] == "failed" and reason in outcomes[name]["reason"]
        assert report["files"]["failed"] == len(NASTY_FAILURES)
        kb = VectorStore(offline_settings(data_dir)).open("default")
        metas = [m for _, m, _ in kb.export().values()]
        assert len(metas) == report["chunks"] == sum(r.chunks for r in kb.documents())
        pdf_chunks = [m for m in metas if m["file_type"] == "pdf"]
        assert len(pdf_chunks) > 1500
        assert all(isinstance(m.get("page"), int) and m["page"] >= 1 for m in pdf_chunks)
        zh = [m for m in metas if m["file_name"].startswith("PRC_")]
        # Chinese laws: chapters (第X章) found as headings for nearly every chunk after the preamble.
        assert zh and sum(m["heading"].startswith("第") for m in zh) / len(zh) >= 0.8

    def test_docs_lists_every_document(self, corpus_index) -> None:
        data_dir, report = corpus_index
        listed = run_cli("docs", "--json", env=offline_env(data_dir))
        assert listed.returncode == 0, listed.stderr
        documents = json.loads(listed.stdout)
        assert len(documents) == report["files"]["ok"]
        assert sum(d["chunks"] for d in documents) == report["chunks"]
        assert all(d["visible"] for d in documents)
        pdfs = 21 - len(NASTY_FAILURES)  # SOURCES.md is the markdown one
        assert sorted(d["file_type"] for d in documents) == ["markdown"] + ["pdf"] * pdfs


@pytest.mark.slow
class TestCommands:
    def env(self, tmp_path: Path) -> dict[str, str]:
        return offline_env(tmp_path / "index")

    def test_ingest_docs_delete_round_trip(self, tmp_path: Path) -> None:
        doc = tmp_path / "policy.md"
        doc.write_text("# Password policy\n\nPasswords have at least twelve characters.\n")
        env = self.env(tmp_path)
        ingested = run_cli("ingest", str(doc), "--collection", "policies", env=env)
        assert ingested.returncode == 0, ingested.stderr
        assert "1 ingested" in ingested.stdout
        listed = json.loads(run_cli("docs", "-c", "policies", "--json", env=env).stdout)
        assert [Path(d["source"]).name for d in listed] == ["policy.md"]
        kbs = json.loads(run_cli("collections", "--json", env=env).stdout)
        model = "sentence-transformers/all-MiniLM-L6-v2"
        assert kbs == [{"name": "policies", "documents": 1, "chunks": 1, "model": model, "instruction": None}]
        task = "Given a policy question, find the rule that answers it"
        assert run_cli("collections", "instruction", "policies", task, env=env).stdout.strip() == task
        assert json.loads(run_cli("collections", "--json", env=env).stdout)[0]["instruction"] == task
        cleared = run_cli("collections", "instruction", "policies", "--clear", env=env).stdout
        assert cleared.startswith("(global default) Given a web search query")
        deleted = run_cli("docs", "delete", listed[0]["doc_id"], "-c", "policies", "--json", env=env)
        assert json.loads(deleted.stdout) == {"deleted": [listed[0]["doc_id"]]}
        assert json.loads(run_cli("docs", "-c", "policies", "--json", env=env).stdout) == []

    def test_errors_are_one_line_with_exit_codes(self, tmp_path: Path) -> None:
        env = self.env(tmp_path)
        missing_kb = run_cli("docs", "-c", "nothing-here", env=env)
        assert missing_kb.returncode == 2 and "no knowledge base named 'nothing-here'" in missing_kb.stderr
        bad_config = run_cli("--config", str(tmp_path / "none.yaml"), "docs", env=env)
        assert bad_config.returncode == 2 and "config file not found" in bad_config.stderr
        nothing = run_cli("ingest", str(tmp_path / "absent.pdf"), "--json", env=env)
        assert nothing.returncode == 3
        assert json.loads(nothing.stdout)["outcomes"][0]["reason"] == "no such file or directory"
        for result in (missing_kb, bad_config, nothing):
            assert "Traceback" not in result.stderr

    def test_qwen3_profile_without_weights_says_so_in_one_line(self, tmp_path: Path) -> None:
        doc = tmp_path / "a.txt"
        doc.write_text("hello")
        result = run_cli("--config", "configs/default.yaml", "ingest", str(doc), env={"RAG_DATA_DIR": str(tmp_path)})
        assert result.returncode == 2
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Qwen/Qwen3-Embedding-0.6B" in lines[0] and "offline.yaml" in lines[0]
