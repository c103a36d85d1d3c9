"""The ingest pipeline on real files, the real MiniLM embedder and a real Chroma."""

from __future__ import annotations

import io
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ingest import Ingestor
from ingest.loaders import ocr
from ingest.manifest import delete_document, document_id
from ingest.uploads import UploadOutcome, UploadTooLarge, ingest_uploads, upload_folder
from rag.config import Settings
from rag.types import DocumentRecord

from .support.documents import FAQ, RUNBOOK
from .support.profiles import offline_settings
from .support.store_state import assert_same_chunks, chunk_state


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "runbook.md").write_text(RUNBOOK)
    (folder / "faq.txt").write_text(FAQ)
    (folder / "logo.png").write_bytes(b"\x89PNG not ingested")
    (folder / ".hidden.md").write_text("skipped")
    return folder


@pytest.fixture
def ingestor(settings: Settings, minilm) -> Ingestor:
    return Ingestor(settings, embedder=minilm)


class TestIncremental:
    def test_second_run_skips_everything_and_changes_nothing(self, ingestor: Ingestor, docs: Path) -> None:
        first = ingestor.run([docs])
        assert first.count("added") == 2 and first.exit_code == 0
        assert [Path(p).name for p in first.ignored] == ["logo.png"]
        kb = ingestor.store.open("default")
        before = chunk_state(kb)
        second = ingestor.run([docs])
        assert second.count("unchanged") == 2 and second.count("added", "replaced") == 0
        assert second.embed_seconds == 0.0
        assert_same_chunks(before, chunk_state(kb))

    def test_chunk_metadata(self, ingestor: Ingestor, docs: Path) -> None:
        ingestor.run([docs])
        kb = ingestor.store.open("default")
        metas = [m for _, m, _ in kb.export().values()]
        runbook = sorted((m for m in metas if m["file_name"] == "runbook.md"), key=lambda m: m["chunk_index"])
        assert runbook and runbook[0]["source"] == str((docs / "runbook.md").resolve())
        for meta in runbook:
            assert set(meta) >= {
                "doc_id",
                "version",
                "source",
                "file_type",
                "chunk_index",
                "char_start",
                "char_end",
                "heading",
                "content_hash",
                "ingested_at",
            }
            assert meta["heading"].startswith("VPN runbook")
        [record] = [r for r in kb.documents() if r.source.endswith("runbook.md")]
        assert record.chunks == len(runbook) and record.visible and not record.pending_version

    def test_changed_file_replaces_its_chunks(self, ingestor: Ingestor, docs: Path) -> None:
        ingestor.run([docs])
        kb = ingestor.store.open("default")
        [record] = [r for r in kb.documents() if r.source.endswith("faq.txt")]
        old_ids = kb.chunk_ids(record.doc_id)
        (docs / "faq.txt").write_text(FAQ.replace("30 EUR", "35 EUR"))
        report = ingestor.run([docs])
        assert report.count("replaced") == 1 and report.count("unchanged") == 1
        new_ids = kb.chunk_ids(record.doc_id)
        assert set(old_ids).isdisjoint(new_ids)
        texts = [t for _, m, t in kb.export().values() if m["doc_id"] == record.doc_id]
        assert texts == [FAQ.replace("30 EUR", "35 EUR")]

    def test_prune_removes_only_files_that_are_gone(self, ingestor: Ingestor, docs: Path, tmp_path: Path) -> None:
        elsewhere = tmp_path / "elsewhere.md"
        elsewhere.write_text("# Other\n\nKept: not under the pruned folder.")
        ingestor.run([docs, elsewhere])
        (docs / "faq.txt").unlink()
        kept = ingestor.run([docs])
        kb = ingestor.store.open("default")
        assert kept.count("pruned") == 0 and len(kb.documents()) == 3
        pruned = ingestor.run([docs], prune=True)
        assert [Path(o.path).name for o in pruned.outcomes if o.status == "pruned"] == ["faq.txt"]
        assert sorted(Path(r.source).name for r in kb.documents()) == ["elsewhere.md", "runbook.md"]
        assert all(m["file_name"] != "faq.txt" for _, m, _ in kb.export().values())

    def test_prune_keeps_a_file_that_is_there_but_failed(self, tmp_path: Path, minilm, docs: Path) -> None:
        Ingestor(offline_settings(tmp_path / "ix"), embedder=minilm).run([docs])
        (docs / "faq.txt").write_text(FAQ * 200)  # now over a tiny size limit
        strict = offline_settings(tmp_path / "ix", RAG_INGEST__MAX_FILE_MB="0.001")
        report = Ingestor(strict, embedder=minilm).run([docs], prune=True)
        assert [Path(o.path).name for o in report.outcomes if o.status == "failed"] == ["faq.txt"]
        assert report.count("pruned") == 0
        kb = Ingestor(strict, embedder=minilm).store.open("default")
        assert sorted(Path(r.source).name for r in kb.documents()) == ["faq.txt", "runbook.md"]

    def test_new_chunking_settings_rechunk_unchanged_files(self, tmp_path: Path, minilm, docs: Path) -> None:
        Ingestor(offline_settings(tmp_path / "ix"), embedder=minilm).run([docs])
        finer = offline_settings(tmp_path / "ix", RAG_CHUNKING__MAX_TOKENS="40", RAG_CHUNKING__OVERLAP_TOKENS="0")
        report = Ingestor(finer, embedder=minilm).run([docs])
        assert report.count("replaced") == 2

    def test_delete_document(self, ingestor: Ingestor, docs: Path) -> None:
        ingestor.run([docs])
        kb = ingestor.store.open("default")
        [record] = [r for r in kb.documents() if r.source.endswith("runbook.md")]
        delete_document(kb, record)
        assert kb.document(record.doc_id) is None and kb.chunk_ids(record.doc_id) == []


class TestBadInput:
    def test_broken_files_fail_alone(self, ingestor: Ingestor, corpus: Path, docs: Path) -> None:
        report = ingestor.run([corpus / "nasty", docs / "runbook.md", docs / "missing.pdf"])
        by_name = {Path(o.path).name: o for o in report.outcomes}
        assert by_name["runbook.md"].status == "added"
        assert by_name["missing.pdf"].reason == "no such file or directory"
        failed = {name: o.reason for name, o in by_name.items() if o.status == "failed"}
        assert set(failed) - {"image.pdf"} == {
            "DERIVED_SP800-61rev2_truncated_60pct.pdf",
            "empty.pdf",
            "not-a-pdf.pdf",
            "pdfminer_aes-256.pdf",
            "pypdfsamples_unreadablemetadata.pdf",
            "missing.pdf",
        }
        assert all(reason and "\n" not in reason for reason in failed.values())
        assert report.exit_code == 3
        ok = [o for o in report.outcomes if o.status == "added"]
        # The scanned page is read where the ocr extra is installed.
        assert ("image.pdf" in failed) != ocr.available()
        assert len(ok) == 7 + ocr.available() and all(o.chunks > 0 for o in ok)

    def test_a_changed_file_that_no_longer_parses_keeps_its_old_version(
        self, ingestor: Ingestor, corpus: Path, tmp_path: Path
    ) -> None:
        target = tmp_path / "law.pdf"
        shutil.copy(corpus / "zh" / "PRC_Data_Security_Law.pdf", target)
        ingestor.run([target])
        kb = ingestor.store.open("default")
        before = chunk_state(kb)
        target.write_bytes(target.read_bytes()[:5000])  # an interrupted copy over the good file
        report = ingestor.run([target])
        assert report.outcomes[0].status == "failed" and "truncated" in report.outcomes[0].reason
        assert_same_chunks(before, chunk_state(kb))

    def test_password_option_opens_encrypted_pdf(self, ingestor: Ingestor, corpus: Path) -> None:
        report = ingestor.run([corpus / "nasty" / "pdfminer_aes-256.pdf"], pdf_password="foo")
        assert report.outcomes[0].status == "added"


class TestRecovery:
    def test_half_written_documents_are_hidden_then_repaired(
        self, ingestor: Ingestor, docs: Path, tmp_path: Path
    ) -> None:
        clean = Ingestor(offline_settings(tmp_path / "clean"), embedder=ingestor.embedder)
        clean.run([docs])
        clean_chunks = clean.store.open("default").export()
        expected = chunk_state(clean.store.open("default"))

        ingestor.run([docs / "runbook.md"])
        kb = ingestor.store.open("default")
        [runbook] = kb.documents()
        # A run that died after writing a new document's chunks, before committing it...
        faq = docs / "faq.txt"
        faq_id = document_id(faq)
        half = [c for c in clean_chunks if c.startswith(faq_id)]
        kb.put_document(
            DocumentRecord(
                doc_id=faq_id,
                source=str(faq.resolve()),
                file_type="text",
                size=1,
                sha256="x",
                pending_version=half[0].split(":")[1],
            )
        )
        kb._chunks.upsert(
            ids=half,
            embeddings=np.stack([clean_chunks[c][0] for c in half]),
            documents=[clean_chunks[c][2] for c in half],
            metadatas=[clean_chunks[c][1] for c in half],
        )
        # ...and one whose replacement by a new version was cut off mid-way.
        stale = f"{runbook.doc_id}:feedfacefeedface:00000"
        kb.put_document(replace(runbook, pending_version="feedfacefeedface"))
        kb._chunks.upsert(
            ids=[stale],
            embeddings=clean_chunks[half[0]][0][None, :],
            documents=["stale"],
            metadatas=[{"doc_id": runbook.doc_id, "version": "feedfacefeedface"}],
        )

        # Queries see neither half-written version.
        hits = kb.query(clean_chunks[half[0]][0], 50)
        assert faq_id not in {h.metadata["doc_id"] for h in hits}
        assert stale not in {h.chunk_id for h in hits}

        report = ingestor.run([docs])
        assert sorted(report.recovered) == sorted([faq_id, runbook.doc_id])
        assert_same_chunks(expected, chunk_state(kb))


class TestServerMode:
    def test_ingest_into_a_chroma_server(self, chroma_server: str, tmp_path: Path, minilm, docs: Path) -> None:
        settings = offline_settings(tmp_path / "ix", RAG_CHROMA__URL=chroma_server)
        report = Ingestor(settings, embedder=minilm).run([docs])
        assert report.count("added") == 2
        again = Ingestor(settings, embedder=minilm).run([docs])
        assert again.count("unchanged") == 2
        kb = Ingestor(settings, embedder=minilm).store.open("default")
        hits = kb.query(minilm.embed_query("what does error 809 mean"), 3)
        assert hits[0].metadata["file_name"] == "runbook.md" and "809" in hits[0].text


class TestUploads:
    """The upload transaction without HTTP: what the upload route runs, from file objects."""

    def test_a_replacement_that_fails_to_ingest_puts_the_earlier_file_back(
        self, ingestor: Ingestor, corpus: Path, tmp_path: Path
    ) -> None:
        folder = upload_folder(ingestor.settings.data_dir, "default")
        good = (corpus / "zh" / "PRC_Data_Security_Law.pdf").read_bytes()

        def upload(*files: tuple[str, bytes]) -> list[UploadOutcome]:
            return ingest_uploads(
                [(name, io.BytesIO(data)) for name, data in files],
                ingestor=ingestor,
                collection="default",
                folder=folder,
                max_file_mb=50,
            )

        first = upload(("law.pdf", good), ("notes.text", "数据出境需要评估。".encode()))
        assert [(o.file, o.status) for o in first] == [("law.pdf", "added"), ("notes.text", "added")]
        before = chunk_state(ingestor.store.open("default"))
        # A PDF by its magic, truncated: past the content check, refused by the parser.
        again = upload(("law.pdf", good[:5000]), ("../x.exe", b"MZ"))
        assert [(o.file, o.status) for o in again] == [("../x.exe", "failed"), ("law.pdf", "failed")]
        assert "truncated" in again[1].reason and again[0].to_dict().keys() == {"file", "status", "reason"}
        assert (folder / "law.pdf").read_bytes() == good  # the file the index still describes
        assert sorted(p.name for p in folder.iterdir()) == ["law.pdf", "notes.text"]
        assert_same_chunks(chunk_state(ingestor.store.open("default")), before)

    def test_a_file_over_the_limit_refuses_the_whole_upload_and_keeps_nothing(
        self, ingestor: Ingestor, tmp_path: Path
    ) -> None:
        folder = tmp_path / "uploads"
        with pytest.raises(UploadTooLarge, match=r"big\.txt: over 0\.001 MB"):
            ingest_uploads(
                [("small.txt", io.BytesIO(b"fits")), ("big.txt", io.BytesIO(b"x" * 2000))],
                ingestor=ingestor,
                collection="default",
                folder=folder,
                max_file_mb=0.001,
            )
        assert list(folder.iterdir()) == []
