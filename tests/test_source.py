"""See the source, over real shared-corpus PDFs (English and Chinese) served by the real API on
127.0.0.1: the original downloaded, pages drawn as PNG (width capped, cached), and a cited chunk's
highlight checked against PDFium's own boxes for the same words; files gone or changed since
ingest are 410, pages and chunks that do not exist 404."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest import Ingestor
from ingest.loaders import ocr
from rag.api import create_app
from rag.pipeline import RagPipeline

from .support.loopback import serve_asgi
from .support.profiles import offline_settings
from .support.scans import scanned_copy

pytestmark = pytest.mark.slow  # two PDFs ingested, a served app

KEYS = [
    {"key": "source-reader", "role": "read", "collections": ["default"], "name": "reader"},
    {"key": "source-other", "role": "read", "collections": ["other"], "name": "other"},
]
READER = {"Authorization": "Bearer source-reader"}
ENGLISH, CHINESE = "SP800-40r3.pdf", "PRC_Data_Security_Law.pdf"
SCAN = "patching-scan.pdf"


@pytest.fixture(scope="module")
def served(corpus: Path, minilm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data_dir = tmp_path_factory.mktemp("source")
    docs = data_dir / "docs"
    docs.mkdir()
    shutil.copy(corpus / "en" / ENGLISH, docs)
    shutil.copy(corpus / "zh" / CHINESE, docs)
    (docs / "notes.md").write_text("# Notes\n\nThe staging server restarts every Sunday at 02:00.\n")
    (docs / "gone.txt").write_text("This file will be deleted after it is ingested.\n")
    if ocr.available():
        (docs / SCAN).write_bytes(scanned_copy(corpus / "en" / ENGLISH, [16]))  # Table 4-1's page
    settings = offline_settings(data_dir, RAG_API__KEYS=json.dumps(KEYS), RAG_API__MAX_PAGE_WIDTH="1200")
    report = Ingestor(settings, embedder=minilm).run([docs])
    assert report.count("failed") == 0
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        yield url, data_dir


def documents(url: str) -> dict[str, str]:
    listed = httpx.get(f"{url}/v1/collections/default/documents", headers=READER).json()["documents"]
    return {d["file"]: d["doc_id"] for d in listed}


def pdfium_boxes(pdf: Path, page: int, text: str) -> list[tuple[float, float, float, float]]:
    """PDFium's own boxes for the first 4-word phrase of `text` it can find on the page (top-left origin)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(pdf))
    try:
        page_ = document[page - 1]
        height = page_.get_height()
        textpage = page_.get_textpage()
        words = text.split()
        phrases = [" ".join(words[i : i + 4]) for i in range(len(words) - 3)] if len(words) > 3 else []
        # Chinese has no spaces: phrases of 8 characters instead.
        phrases += [
            text[i : i + 8] for i in range(0, max(len(text) - 8, 0), 8) if not any(c.isspace() for c in text[i : i + 8])
        ]
        for phrase in phrases:
            found = textpage.search(phrase, match_case=False).get_next()
            if found:
                start, count = found
                boxes = [textpage.get_rect(i) for i in range(textpage.count_rects(start, count))]
                return [(left, height - top, right, height - bottom) for left, bottom, right, top in boxes]
        return []
    finally:
        document.close()


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize(
    ("question", "file"),
    [
        ("In which kind of environment can it be acceptable to roll out patches without testing them first?", ENGLISH),
        ("数据处理者应当如何开展数据处理活动", CHINESE),
    ],
)
def test_a_cited_chunk_is_highlighted_where_pdfium_draws_its_words(
    served: tuple[str, Path], corpus: Path, question: str, file: str
) -> None:
    url, _ = served
    asked = httpx.post(
        f"{url}/v1/ask",
        json={"question": question, "recall_mode": "hybrid", "filters": {"file": file}},
        headers=READER,
        timeout=120,
    ).json()
    citation = asked["citations"][0]
    assert citation["file"] == file and citation["page"], citation
    found = httpx.get(
        f"{url}/v1/collections/default/documents/{citation['doc_id']}/pages/{citation['page']}/highlights",
        params={"chunk_id": citation["chunk_id"]},
        headers=READER,
    )
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["matched"] > 0.8 and body["rects"], body
    assert 500 < body["page_height"] < 900 and 400 < body["page_width"] < 700  # points, a Letter/A4 page
    expected = pdfium_boxes(corpus / ("en" if file == ENGLISH else "zh") / file, citation["page"], citation["text"])
    assert expected, "PDFium found none of the chunk's phrases on its page"
    for box in expected:
        assert any(overlaps(box, tuple(rect)) for rect in body["rects"]), (box, body["rects"][:5])


def test_pages_are_drawn_as_png_capped_and_cached(served: tuple[str, Path]) -> None:
    url, data_dir = served
    doc = documents(url)[ENGLISH]
    page = f"{url}/v1/collections/default/documents/{doc}/pages/3"
    drawn = httpx.get(page, params={"width": 640}, headers=READER)
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    assert drawn.content[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", drawn.content[16:24])
    assert width == 600 and 700 < height < 800  # rounded to 100; the page's proportions
    capped = httpx.get(page, params={"width": 50_000}, headers=READER)
    assert struct.unpack(">I", capped.content[16:20])[0] == 1200  # api.max_page_width
    assert sorted(p.name for p in (data_dir / "cache" / "pages").rglob("*.png")) == ["3-1200.png", "3-600.png"]
    assert httpx.get(page, params={"width": 640}, headers=READER).content == drawn.content


def test_missing_pages_chunks_and_documents_are_clear_errors(served: tuple[str, Path]) -> None:
    url, _ = served
    docs = documents(url)
    base = f"{url}/v1/collections/default/documents"

    def get(path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{base}/{path}", params=params, headers=READER)

    beyond = get(f"{docs[ENGLISH]}/pages/999")
    assert beyond.status_code == 404 and "has 26 pages; there is no page 999" in beyond.json()["error"]["message"]
    assert get(f"{docs[ENGLISH]}/pages/0").status_code == 422
    assert get(f"{docs['notes.md']}/pages/1").json()["error"]["code"] == "no_pages"
    other_doc_chunk = get(f"{docs[ENGLISH]}/pages/1/highlights", chunk_id=f"{docs[CHINESE]}:x:00001")
    assert other_doc_chunk.status_code == 404 and other_doc_chunk.json()["error"]["code"] == "chunk_not_found"
    for hostile in ("nope", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd"):
        response = get(f"{hostile}/file")
        assert response.status_code == 404, (hostile, response.text)
    elsewhere = httpx.get(f"{base}/{docs[ENGLISH]}/file", headers={"Authorization": "Bearer source-other"})
    assert elsewhere.status_code == 403


@pytest.fixture
def scanned_passage(served: tuple[str, Path]) -> dict[str, Any]:
    """The scan's best passage for a question about its table (the scan is only there with OCR)."""
    if not ocr.available():
        pytest.skip("the ocr extra is not installed (make test installs it)")
    url, _ = served
    [passage, *_] = httpx.post(
        f"{url}/v1/search",
        json={"query": "Which technique supports appliances?", "filters": {"file": SCAN}},
        headers=READER,
    ).json()["passages"]
    return passage


def test_a_scanned_page_shows_its_chunk_as_its_section(
    served: tuple[str, Path], scanned_passage: dict[str, Any]
) -> None:
    """The section view parses without OCR (seconds a page, in a request): for a scanned page it
    shows the chunk OCR gave at ingest, all of it marked."""
    url, _ = served
    passage = scanned_passage
    doc_id = documents(url)[SCAN]
    section = httpx.get(
        f"{url}/v1/collections/default/documents/{doc_id}/section",
        params={"chunk_id": passage["chunk_id"]},
        headers=READER,
    ).json()
    assert section["text"] == passage["text"] and section["page"] == 1
    assert section["highlight"] == [0, len(passage["text"])]


def test_a_scanned_page_highlights_the_boxes_ocr_read_the_chunk_from(
    served: tuple[str, Path], scanned_passage: dict[str, Any], corpus: Path
) -> None:
    """The scan is SP800-40r3's page 17 drawn as an image, the same size: its highlight must lie
    where PDFium draws the same words on the original's page."""
    url, data_dir = served
    passage = scanned_passage
    address = f"{url}/v1/collections/default/documents/{documents(url)[SCAN]}/pages/1/highlights"
    found = httpx.get(address, params={"chunk_id": passage["chunk_id"]}, headers=READER, timeout=120)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["matched"] > 0.8 and body["rects"], body
    expected = pdfium_boxes(corpus / "en" / ENGLISH, 17, passage["text"])
    assert expected, "PDFium found none of the chunk's phrases on the original page"
    for box in expected:
        assert any(overlaps(box, tuple(rect)) for rect in body["rects"]), (box, body["rects"][:5])
    [cached] = (data_dir / "cache" / "ocr").glob("*/1.json")  # the page is read once, then kept
    again = httpx.get(address, params={"chunk_id": passage["chunk_id"]}, headers=READER).json()
    assert again == body and cached.is_file()


def test_the_page_opens_the_cited_page_with_the_passage_marked(
    served: tuple[str, Path], corpus: Path, browser, tmp_path: Path
) -> None:
    from .support.browser import SCREENSHOTS, page_with_key, shoot

    url, _ = served
    errors: list[str] = []
    context, page = page_with_key(browser, url, "source-reader", errors, accept_downloads=True)
    page.select_option("#ask-mode", "hybrid")
    page.fill(
        "#ask-question",
        "In which kind of environment can it be acceptable to roll out patches without testing them first?",
    )
    page.click("#ask-submit")
    page.wait_for_selector("#citations li", timeout=120_000)
    cited = page.evaluate("citations[0]")
    assert cited["file"] == ENGLISH, cited
    page.click("#citations li button.cite >> nth=0")
    page.click("#open-source")
    page.wait_for_selector("#source-marks .mark", timeout=60_000)
    assert page.text_content("#source-page-label") == f"page {cited['page']} of 26"

    # The marks, in page points, cover where PDFium draws the passage's words.
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(corpus / "en" / ENGLISH))
    width_pt, height_pt = pdf[cited["page"] - 1].get_size()
    pdf.close()
    image = page.locator("#source-image").bounding_box()
    marks = []
    for box in page.locator("#source-marks .mark").all():
        b = box.bounding_box()
        x0 = (b["x"] - image["x"]) / image["width"] * width_pt
        y0 = (b["y"] - image["y"]) / image["height"] * height_pt
        marks.append(
            (x0, y0, x0 + b["width"] / image["width"] * width_pt, y0 + b["height"] / image["height"] * height_pt)
        )
    expected = pdfium_boxes(corpus / "en" / ENGLISH, cited["page"], cited["text"])
    assert expected and all(any(overlaps(e, m) for m in marks) for e in expected), (expected, marks[:5])
    page.screenshot(path=str(SCREENSHOTS / "source-viewer-desktop.png"))  # the viewport: the dialog as seen

    with page.expect_download() as download:
        page.click("#source-download")
    saved = tmp_path / "downloaded.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes() == (corpus / "en" / ENGLISH).read_bytes()
    page.click("#source-next")
    page.wait_for_selector(f"#source-page-label:has-text('page {cited['page'] + 1} of 26')")
    page.wait_for_selector("#source-state:has-text('not on this page')")
    assert page.locator("#source-marks .mark").count() == 0
    page.click("#source-close")

    # A Markdown source: its section, the passage marked in the text.
    page.click("#new-conversation")
    page.select_option("#ask-mode", "bm25")
    page.fill("#ask-question", "When does the staging server restart?")
    page.click("#ask-submit")
    page.wait_for_selector("#citations li", timeout=120_000)
    first = page.evaluate("citations[0]")
    assert first["file"] == "notes.md", first
    page.click("#citations li button.cite >> nth=0")
    page.click("#open-source")
    page.wait_for_selector("#source-section mark")
    assert "staging server restarts every Sunday" in page.text_content("#source-section mark")
    shoot(page, "source-section-desktop")
    assert errors == [], errors
    context.close()


def test_the_original_downloads_and_a_file_gone_or_changed_is_410(served: tuple[str, Path], corpus: Path) -> None:
    url, data_dir = served
    docs = documents(url)
    base = f"{url}/v1/collections/default/documents"
    pdf = httpx.get(f"{base}/{docs[ENGLISH]}/file", headers=READER)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == (corpus / "en" / ENGLISH).read_bytes()
    assert ENGLISH in pdf.headers["content-disposition"]

    (data_dir / "docs" / "gone.txt").unlink()
    gone = httpx.get(f"{base}/{docs['gone.txt']}/file", headers=READER)
    assert gone.status_code == 410 and "no longer where it was ingested from" in gone.json()["error"]["message"]
    (data_dir / "docs" / "notes.md").write_text("# Notes\n\nThe staging server restarts every Monday.\n")
    changed = httpx.get(f"{base}/{docs['notes.md']}/file", headers=READER)
    assert changed.status_code == 410 and "has changed since it was ingested" in changed.json()["error"]["message"]
