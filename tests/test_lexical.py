"""BM25 beside Chroma: the analyser (English, Chinese, mixed), the index's life cycle through real
ingestion (adds, replacements, deletions, a process that never saw the writes), fusion, and
hybrid recall through the pipeline."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.manifest import delete_document
from ingest.pipeline import Ingestor
from rag.config import RecallSettings, Settings
from rag.lexical.analyzer import analyze
from rag.lexical.index import LexicalIndex, LexicalIndexes
from rag.pipeline import RagPipeline, SearchOptions
from rag.recall import document_filter, fuse, rrf, weighted
from rag.store import KnowledgeBase
from rag.types import DocumentRecord, Passage

from .support.documents import FAQ, RUNBOOK
from .support.profiles import offline_settings


class TestAnalyzer:
    def test_english_is_lowercased_stemmed_and_stopped(self) -> None:
        assert analyze("The Firewalls are blocking connections") == ["firewal", "block", "connect"]

    def test_chinese_words_and_the_words_inside_them(self) -> None:
        terms = analyze("个人信息保护法")
        assert {"个人信息", "个人", "信息", "保护法"} <= set(terms)

    def test_function_words_and_punctuation_are_not_terms(self) -> None:
        terms = analyze("我们的数据，是否算敏感个人信息？")
        assert "的" not in terms and "，" not in terms and "？" not in terms and "敏感" in terms

    def test_mixed_scripts_keep_both(self) -> None:
        terms = analyze("VPN报错809怎么办 error code 809")
        assert {"vpn", "809", "报错", "error", "code"} <= set(terms)

    def test_error_codes_and_product_names_stay_whole(self) -> None:
        assert analyze("ERR_CONN_RESET on WinSCP 6.3") == ["err_conn_reset", "winscp"]


class TestFusion:
    def test_reciprocal_rank_fusion(self) -> None:
        fused = rrf([["a", "b"], ["b", "c"]], k=60)
        assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
        assert fused["a"] == pytest.approx(1 / 61) and fused["c"] == pytest.approx(1 / 62)

    def test_weighted_fusion_normalises_each_run(self) -> None:
        fused = weighted([{"a": 0.9, "b": 0.5}, {"b": 20.0, "c": 10.0}], [0.5, 0.5])
        # a: dense max (1.0) only; b: dense min (0) + bm25 max (1); c: bm25 min (0)
        assert fused == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.0})

    def test_fuse_keeps_both_scores_and_reranks_from_one(self) -> None:
        dense = [Passage("x", "", 1, 0.8, dense_score=0.8), Passage("y", "", 2, 0.6, dense_score=0.6)]
        lexical = [Passage("y", "", 1, 7.0, bm25_score=7.0), Passage("z", "", 2, 3.0, bm25_score=3.0)]
        fused = fuse(dense, lexical, k=10, settings=RecallSettings(fusion="weighted", dense_weight=0.4))
        assert [p.chunk_id for p in fused] == ["y", "x", "z"]
        assert [p.recall_rank for p in fused] == [1, 2, 3]
        assert fused[0].dense_score == 0.6 and fused[0].bm25_score == 7.0
        assert fused[1].bm25_score is None and fused[2].dense_score is None

    def test_document_filter_matches_the_dense_filter_keys(self) -> None:
        record = DocumentRecord("d1", "/kb/manual.pdf", "pdf", 1, "")
        assert document_filter({"file": "manual.pdf"})(record)  # type: ignore[misc]
        assert document_filter({"file_type": ["docx", "pdf"]})(record)  # type: ignore[misc]
        assert not document_filter({"file": "other.pdf"})(record)  # type: ignore[misc]


@pytest.fixture
def kb_files(tmp_path: Path, corpus: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "runbook.md").write_text(RUNBOOK)
    (folder / "faq.txt").write_text(FAQ)
    shutil.copy(corpus / "zh" / "PRC_Data_Security_Law.pdf", folder)
    return folder


def bm25_files(index: LexicalIndex) -> list[str]:
    return sorted(p.name for p in index.folder.glob("*.json"))


def ingested(tmp_path: Path, path: Path, minilm) -> tuple[Settings, Ingestor, KnowledgeBase]:
    """`path` ingested into a fresh index under tmp_path: its settings, the ingestor, the knowledge base."""
    settings = offline_settings(tmp_path / "ix")
    ingestor = Ingestor(settings, embedder=minilm)
    ingestor.run([path])
    return settings, ingestor, ingestor.store.open("default")


BADGES = "# Badges\n\nLost badges are replaced by the front desk within a day.\n"


class TestLifecycle:
    def test_ingest_replace_delete_and_a_process_that_never_saw_the_writes(
        self, tmp_path: Path, kb_files: Path, minilm
    ) -> None:
        settings, ingestor, kb = ingested(tmp_path, kb_files, minilm)
        index = LexicalIndexes(settings).get(kb)
        assert len(bm25_files(index)) == 3  # one term file per committed document version

        def top_file(query: str) -> str:
            hits = kb.passages(index.search(query, 3))
            return hits[0].file_name if hits else ""

        assert top_file("error 809 L2TP") == "runbook.md"
        assert top_file("数据安全 风险评估") == "PRC_Data_Security_Law.pdf"
        assert top_file("seat discount") == "faq.txt"

        # A replacement: the old version's terms go, the new ones come, the old file is pruned.
        (kb_files / "faq.txt").write_text("The enterprise tier is priced per cluster, not per seat.")
        ingestor.run([kb_files])
        assert top_file("enterprise cluster") == "faq.txt"
        assert index.search("discount", 3) == []
        assert len(bm25_files(index)) == 3

        # A deletion through the manifest (as `rag docs delete` and the API do).
        [record] = [r for r in kb.documents() if r.source.endswith("runbook.md")]
        delete_document(kb, record)
        assert top_file("error 809 L2TP") != "runbook.md"

        # Another process with an empty index folder rebuilds the same index from Chroma alone.
        before = index.snapshot()
        fresh_settings = offline_settings(tmp_path / "ix")
        shutil.rmtree(fresh_settings.data_dir / "bm25")
        fresh = LexicalIndexes(fresh_settings).get(ingestor.store.open("default"))
        assert fresh.snapshot() == before
        assert fresh.search("数据安全 风险评估", 5) == index.search("数据安全 风险评估", 5)

    def test_a_stale_term_file_of_an_uncommitted_version_is_never_searched(
        self, tmp_path: Path, kb_files: Path, minilm
    ) -> None:
        settings, ingestor, kb = ingested(tmp_path, kb_files / "runbook.md", minilm)
        index = LexicalIndexes(settings).get(kb)
        [record] = kb.documents()
        # What a run killed between writing terms and committing would leave behind: the term file
        # of a version the record names as pending only.
        orphan = index.folder / f"{record.doc_id}.0123456789abcdef.a1.json"
        orphan.write_text('{"chunk_ids": ["ghost"], "terms": [["ghost"]]}')
        kb.put_document(replace(record, pending_version="0123456789abcdef"))
        assert index.search("ghost", 5) == []
        ingestor.run([kb_files / "runbook.md"])  # any later run recovers the document and drops the file
        assert not orphan.exists()
        assert len(bm25_files(index)) == 1


class TestAtScale:
    def test_an_unchanged_index_reads_one_record_a_query_and_a_change_only_the_records_written(
        self, tmp_path: Path, kb_files: Path, minilm, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings, _, kb = ingested(tmp_path, kb_files, minilm)
        index = LexicalIndexes(settings).get(kb)
        assert index.search("error 809 L2TP", 3)  # the first search reads the whole manifest
        reads = {"whole manifest": 0, "records written since": 0}
        whole, since = kb.documents, kb.manifest_changes

        def read_whole(**kwargs: bool) -> list[DocumentRecord]:
            reads["whole manifest"] += 1
            return whole(**kwargs)

        def read_since(since_ns: int) -> tuple[list[DocumentRecord], int]:
            reads["records written since"] += 1
            return since(since_ns)

        monkeypatch.setattr(kb, "documents", read_whole)
        monkeypatch.setattr(kb, "manifest_changes", read_since)
        for _ in range(20):
            assert index.search("error 809 L2TP", 3)
        assert reads == {"whole manifest": 0, "records written since": 0}
        # Another writer (its own store handle) adds a document: one read of what it wrote.
        (kb_files / "badges.md").write_text(BADGES)
        Ingestor(settings, embedder=minilm).run([kb_files / "badges.md"])
        assert kb.passages(index.search("lost badges", 3))[0].file_name == "badges.md"
        assert reads == {"whole manifest": 0, "records written since": 1}

    def test_a_large_index_serves_new_versions_beside_its_matrix_until_the_rebuild(
        self, tmp_path: Path, kb_files: Path, minilm
    ) -> None:
        settings, ingestor, kb = ingested(tmp_path, kb_files, minilm)
        folder = settings.data_dir / "bm25" / "default"
        # As a large index does (without a thread, so the test sees the state between).
        index = LexicalIndex(kb, folder, sync_rebuild_chunks=0, rebuild_in_background=False)
        assert index.search("seat discount", 3)
        (kb_files / "faq.txt").write_text("The enterprise tier is priced per cluster, not per seat.")
        (kb_files / "badges.md").write_text(BADGES)
        ingestor.run([kb_files])

        served = index.search("enterprise cluster lost badges", 10)
        assert index.needs_rebuild
        assert index.search("discount", 3) == []  # the replaced version's rows are hidden at once
        # The same ranking as an index built whole over the same documents; scores close (the
        # replaced rows still count in the statistics until the rebuild).
        whole = LexicalIndex(kb, folder).search("enterprise cluster lost badges", 10)
        assert [chunk for chunk, _ in served] == [chunk for chunk, _ in whole]
        assert [score for _, score in served] == pytest.approx([score for _, score in whole], rel=0.1)

        index.rebuild()
        assert not index.needs_rebuild
        rebuilt = index.search("enterprise cluster lost badges", 10)
        assert [chunk for chunk, _ in rebuilt] == [chunk for chunk, _ in whole]
        assert [score for _, score in rebuilt] == pytest.approx([score for _, score in whole], rel=1e-6)

    def test_a_large_index_reads_the_whole_manifest_after_a_deletion_in_the_background(
        self, tmp_path: Path, kb_files: Path, minilm
    ) -> None:
        settings, _, kb = ingested(tmp_path, kb_files, minilm)
        folder = settings.data_dir / "bm25" / "default"
        index = LexicalIndex(kb, folder, sync_rebuild_chunks=0)
        assert kb.passages(index.search("error 809 L2TP", 3))[0].file_name == "runbook.md"
        [record] = [r for r in kb.documents() if r.source.endswith("runbook.md")]
        delete_document(kb, record)
        assert all(p.file_name != "runbook.md" for p in kb.passages(index.search("error 809 L2TP", 3)))
        assert index.wait_for_rebuild(120)
        assert not index.needs_rebuild
        # Now as an index built whole over what is left.
        assert index.search("error 809 L2TP seat", 5) == LexicalIndex(kb, folder).search("error 809 L2TP seat", 5)


class TestHybridRecall:
    def test_modes_per_request_and_filters(self, tmp_path: Path, kb_files: Path, minilm) -> None:
        settings = offline_settings(tmp_path / "ix")
        Ingestor(settings, embedder=minilm).run([kb_files])
        rag = RagPipeline(settings, embedder=minilm)
        question = "what does error 809 mean"
        results = {mode: rag.search(question, options=SearchOptions(mode=mode)) for mode in ("dense", "bm25", "hybrid")}
        for mode, result in results.items():
            assert result.passages[0].file_name == "runbook.md", mode
        assert "embed" not in results["bm25"].timings  # BM25 alone needs no query vector
        assert results["bm25"].passages[0].bm25_score and results["bm25"].passages[0].dense_score is None
        hybrid = results["hybrid"].passages[0]
        assert hybrid.dense_score is not None and hybrid.bm25_score is not None
        only_faq = rag.search("error 809", options=SearchOptions(mode="bm25", filters={"file": "faq.txt"}))
        assert all(p.file_name == "faq.txt" for p in only_faq.passages)
