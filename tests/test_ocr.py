"""Scanned PDFs read by OCR (the `ocr` extra, which make test installs): scans made from the shared
corpus's text PDFs, so what OCR reads can be compared with the text layer the scan lost."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from ingest import Ingestor
from ingest._parse import ParseLimits, parse_all
from ingest.loaders import LoadOptions, load_document, ocr
from rag.errors import LoadError
from rag.evaluate.metrics import character_accuracy
from rag.pipeline import RagPipeline
from rag.store import VectorStore

from .support.profiles import offline_settings
from .support.scans import blank_scan, partly_scanned, scanned_copy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ocr.available(), reason="the ocr extra is not installed (make test installs it)"),
]

# Pages 11, 13, 16 and 17 of SP800-40r3 (patch management) as a four-page scan.
PATCHING_PAGES = [10, 12, 15, 16]


@pytest.fixture(scope="module")
def patching_scan(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scans") / "patching-scan.pdf"
    path.write_bytes(scanned_copy(corpus / "en" / "SP800-40r3.pdf", PATCHING_PAGES))
    return path


def test_an_image_only_pdf_is_ingested_and_a_question_cites_its_page(
    patching_scan: Path, tmp_path: Path, minilm: object
) -> None:
    assert "".join(page.extract_text() or "" for page in PdfReader(patching_scan).pages).strip() == ""
    settings = offline_settings(tmp_path / "index")
    pages: list[tuple[str, int, int]] = []
    report = Ingestor(settings, embedder=minilm).run(  # type: ignore[arg-type]
        [patching_scan], on_page=lambda path, done, total: pages.append((path.name, done, total))
    )
    [outcome] = report.outcomes
    assert outcome.status == "added" and outcome.pages == 4, outcome
    chunks = [(text, meta) for _, meta, text in VectorStore(settings).open("default").export().values()]
    # Running headers ("GUIDE TO ENTERPRISE PATCH MANAGEMENT TECHNOLOGIES" atop every page, then its
    # number) are gone, as from a text PDF; the headings OCR read are kept.
    assert not any("GUIDETOENTERPRISEPATCHMANAGEMENTTECHNOLOGIES" in text.replace(" ", "") for text, _ in chunks)
    assert {meta["heading"] for _, meta in chunks} >= {"4. Enterprise Patch Management Technologies"}
    # Progress came back from the parse worker page by page.
    assert pages == [("patching-scan.pdf", n, 4) for n in (1, 2, 3, 4)]
    answer = RagPipeline(settings, embedder=minilm).ask(  # type: ignore[arg-type]
        "What are the three techniques patch management tools use to find missing patches?"
    )
    assert answer.found, answer.notes
    first = re.search(r"\[(\d+)\]", answer.text)
    assert first is not None, answer.text
    # The first sentence cites original page 16: the scan's third page.
    assert answer.citations[int(first.group(1)) - 1].passage.page == 3, answer.text


def test_ocr_reads_english_and_chinese_scans_close_to_their_text_layer(corpus: Path) -> None:
    for source, pages, floor in (
        (corpus / "en" / "SP800-61rev2.pdf", [12, 30], 0.95),
        (corpus / "zh" / "PRC_Data_Security_Law.pdf", [2, 4], 0.90),
    ):
        lines = ocr.read_pages(scanned_copy(source, pages), [0, 1], password=None, progress=None)
        reader = PdfReader(source)
        distance = length = 0
        for position, index in enumerate(pages):
            d, n = character_accuracy("\n".join(lines[position]), reader.pages[index].extract_text())
            distance, length = distance + d, length + n
        assert 1 - distance / length >= floor, (source.name, 1 - distance / length)


def test_a_two_column_scan_is_read_column_by_column(corpus: Path) -> None:
    document = load_document(corpus / "nasty" / "image.pdf", (corpus / "nasty" / "image.pdf").read_bytes())
    text = " ".join(section.text for section in document.sections)
    left = text.index("tumour and metastases, by fold change")
    left_next = text.index("significance (p < 0.01)")
    right = text.index("larger difference between the two patients")
    # The left column's second line follows its first; the right column comes after the whole left one.
    assert left < left_next < text.index("tumour and the metastases is peculiar") < right
    assert document.pages == 1 and {s.page for s in document.sections} == {1}


def test_a_mixed_document_reads_only_its_scanned_page_by_ocr(corpus: Path, tmp_path: Path) -> None:
    source = corpus / "en" / "SP800-124r1.pdf"
    mixed = tmp_path / "mixed.pdf"
    mixed.write_bytes(partly_scanned(source, {15}))
    progress: list[tuple[int, int]] = []
    document = load_document(
        mixed, mixed.read_bytes(), LoadOptions(on_page=lambda done, total: progress.append((done, total)))
    )
    assert progress == [(1, 1)]  # one page drawn and read, not thirty
    original = load_document(source, source.read_bytes())

    def page_text(doc: object, page: int) -> str:
        return "\n".join(s.text for s in doc.sections if s.page == page)  # type: ignore[attr-defined]

    assert page_text(document, 15) == page_text(original, 15)  # text pages as they were
    distance, length = character_accuracy(page_text(document, 16), page_text(original, 16))
    assert 1 - distance / length > 0.9
    assert "Centralized mobile device management" in page_text(document, 16)
    assert document.pages == original.pages


def test_without_the_extra_a_scan_fails_naming_it(
    patching_scan: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    off = LoadOptions(ocr=False)
    with pytest.raises(LoadError, match=r"ingest\.ocr is off"):
        load_document(patching_scan, patching_scan.read_bytes(), off)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)  # what an install without it imports
    assert not ocr.available()
    with pytest.raises(LoadError, match=r"no text layer .* install the 'ocr' extra: pip install 'rag-kb\[ocr\]'"):
        load_document(patching_scan, patching_scan.read_bytes())
    # A text PDF never needed it.
    assert load_document(corpus / "en" / "SP800-40r3.pdf", (corpus / "en" / "SP800-40r3.pdf").read_bytes()).sections


def test_a_long_scan_outlives_the_time_fence_while_pages_come_back(tmp_path: Path) -> None:
    """The fence counts from the last page read: forty blank pages take several times the fence in
    all (about half a second each here), and the file ends with its own reason, not a timeout."""
    scan = tmp_path / "blank.pdf"
    scan.write_bytes(blank_scan(40))
    pages: list[int] = []
    started = time.monotonic()
    [(_, result)] = parse_all(
        [scan],
        options=LoadOptions(),
        workers=1,
        limits=ParseLimits(timeout_s=5),
        on_page=lambda path, done, total: pages.append(done),
    )
    elapsed = time.monotonic() - started
    assert isinstance(result, LoadError) and result.reason == "no text in the file", result
    assert pages == list(range(1, 41))
    assert elapsed > 5, f"{elapsed:.1f}s: the scan never needed more than one fence"


def test_a_scan_with_more_pages_than_the_ocr_limit_fails_before_reading_any(patching_scan: Path) -> None:
    results = dict(
        parse_all([patching_scan], options=LoadOptions(ocr_max_pages=3), workers=1, limits=ParseLimits(timeout_s=60))
    )
    failed = results[patching_scan]
    assert isinstance(failed, LoadError)
    assert failed.reason == "4 pages have no text layer: more than ingest.ocr_max_pages (3) to OCR"


def test_a_scan_past_the_memory_fence_fails_naming_the_setting(patching_scan: Path) -> None:
    """ONNX Runtime reports a failed allocation as its own error: it must still read as the memory cap."""
    [(_, failed)] = parse_all([patching_scan], options=LoadOptions(), workers=1, limits=ParseLimits(memory_mb=1700))
    assert isinstance(failed, LoadError) and "memory cap (ingest.parse_memory_mb)" in failed.reason, failed
