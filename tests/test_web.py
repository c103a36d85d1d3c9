"""The web page, end to end in headless Chromium (Debian's, driven by Playwright) against the real
app on 127.0.0.1: upload a real PDF, ask about it and open a citation, run the rerank playground
example and export its CSV, delete the document; screenshots of every page at desktop and phone
width are written to test-artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select

from rag.api import create_app
from rag.pipeline import RagPipeline

from .support.browser import page_with_key, shoot
from .support.loopback import serve_asgi
from .support.profiles import local_reranker_env, offline_settings

pytestmark = pytest.mark.slow  # a browser and a served app

ADMIN_KEY = "web-admin-key"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], minilm) -> Iterator[str]:
    """The offline profile with a (tiny, random-weight) Qwen3 reranker, so the playground has one,
    and an extractive floor of 0 so that its arbitrary scores still leave something to cite."""
    settings = offline_settings(
        tmp_path_factory.mktemp("web"),
        **local_reranker_env(tiny_models["reranker"]),
        RAG_GENERATE__EXTRACTIVE_MIN_SIMILARITY="0",
        RAG_GENERATE__MIN_RERANK_SCORE="0",
        RAG_API__KEYS=json.dumps([{"key": ADMIN_KEY, "role": "admin", "name": "web-test"}]),
    )
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        yield url


def test_the_page_is_self_contained_and_strict(web: str) -> None:
    page = httpx.get(f"{web}/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/app.css"):
        response = httpx.get(f"{web}{asset}")
        assert response.status_code == 200 and response.headers["x-content-type-options"] == "nosniff"
        # No CDN, no other origin: the page works on a machine with no internet.
        assert not re.search(r"https?://", response.text), asset
    assert not re.search(r"https?://", page.text)
    assert "<script>" not in page.text and " on" + "click=" not in page.text  # nothing inline for the CSP to refuse


def test_upload_ask_cite_rerank_export_delete(web: str, browser, corpus: Path, tmp_path: Path) -> None:
    from playwright.sync_api import expect  # importable: the browser fixture checked

    context = browser.new_context(viewport=VIEWPORTS["desktop"], accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{web}/#documents")

    # Without a key the API refuses, and the page says so.
    page.wait_for_selector("#ask-banner.error", state="attached")
    page.fill("#api-key", ADMIN_KEY)
    page.press("#api-key", "Enter")
    page.wait_for_selector("#key-state:has-text('key in use')")
    assert page.evaluate("sessionStorage.getItem('rag-kb.api-key')") == ADMIN_KEY
    errors.clear()  # the 401s before the key was given were expected

    # Documents: a new collection, a real PDF and a file that is not one, in one upload.
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"this is not a PDF at all")
    page.fill("#docs-new", "web-e2e")
    page.set_input_files("#upload-files", [str(corpus / "en" / "SP800-40r3.pdf"), str(fake)])
    page.click("#upload-submit")
    page.wait_for_selector("#upload-results tbody tr, #docs-banner.error", timeout=180_000)
    assert page.locator("#docs-banner.error").count() == 0, page.inner_text("#docs-banner")
    results = page.locator("#upload-results tbody tr").all_inner_texts()
    assert any(row.startswith("SP800-40r3.pdf\tadded") for row in results), results
    assert any("fake.pdf\tfailed" in row and "not a PDF" in row for row in results), results
    page.wait_for_selector("#documents tbody tr")
    row = page.locator("#documents tbody tr").first.inner_text()
    assert row.startswith("SP800-40r3.pdf") and "\t" in row
    assert page.input_value("#docs-collection") == "web-e2e"
    shoot(page, "documents-desktop")

    # Ask: streamed answer, a clickable citation showing file, page, heading, passage and score.
    page.click("nav a[data-page='ask']")
    page.select_option("#ask-collection", "web-e2e")
    page.fill("#ask-question", "Among the SCAP components, what is CCSS used for, as opposed to CVSS?")
    page.press("#ask-question", "Control+Enter")  # the keyboard path
    page.wait_for_selector("#citations li", timeout=120_000)
    assert page.locator("#answer").inner_text().strip()
    page.locator("#answer button.cite").first.click()
    detail = page.locator("#citation-detail")
    detail.wait_for(state="visible")
    heading = detail.locator("h3").inner_text()
    assert re.match(r"\[\d+\] SP800-40r3\.pdf, page \d+", heading), heading
    assert "rerank score 0." in detail.inner_text() or "rerank score 1." in detail.inner_text()
    assert len(detail.locator("blockquote").inner_text()) > 50
    assert re.search(r"embed \d+ ms · recall \d+ ms · rerank \d+ ms", page.inner_text("#ask-timings"))
    shoot(page, "ask-desktop")

    # Rerank playground: the English example, then the Chinese one, exported as CSV.
    page.click("nav a[data-page='rerank']")
    page.click("#example-en")
    page.click("#rerank-submit")
    page.wait_for_selector("#rerank-results li")
    assert page.locator("#rerank-results li").count() == 5
    page.click("#example-zh")
    assert "敏感个人信息" in page.input_value("#rerank-docs")
    page.click("#rerank-submit")
    expect(page.locator("#rerank-results li .doc").first).to_have_text(re.compile(r"[\u4e00-\u9fff]"))
    scores = [float(s) for s in page.locator("#rerank-results .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    with page.expect_download() as download_info:
        page.click("#rerank-csv")
    exported = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.reader(io.StringIO(exported)))
    assert rows[0] == ["rank", "index", "score", "document"] and len(rows) == 6
    assert [round(float(r[2]), 3) for r in rows[1:]] == scores
    assert any("敏感个人信息" in r[3] for r in rows[1:])
    shoot(page, "rerank-desktop")

    # Phone width: every page fits the screen (no sideways scrolling), screenshots of each.
    page.set_viewport_size(VIEWPORTS["phone"])
    for name in ("ask", "rerank", "documents"):
        page.click(f"nav a[data-page='{name}']")
        page.wait_for_timeout(200)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} page scrolls sideways by {overflow}px at phone width"
        shoot(page, f"{name}-phone")

    # Delete the document (the page asks first).
    page.set_viewport_size(VIEWPORTS["desktop"])
    page.click("nav a[data-page='documents']")
    page.wait_for_selector("#documents tbody tr")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#documents tbody tr button.danger")
    page.wait_for_selector("#docs-banner:has-text('Deleted SP800-40r3.pdf')")
    expect(page.locator("#documents tbody tr")).to_have_count(0)
    listed = httpx.get(
        f"{web}/v1/collections/web-e2e/documents", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ).json()
    assert listed["documents"] == []
    assert errors == [], errors
    context.close()


@pytest.fixture(scope="module")
def logged_web(index: Path, minilm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The offline profile over the sample documents, its question log in a SQLite file of its own."""
    database = tmp_path_factory.mktemp("web-log") / "log.sqlite3"
    keys = [
        {"key": "web-reader-key", "role": "read", "collections": ["default"], "name": "web-reader"},
        {"key": ADMIN_KEY, "role": "admin", "name": "web-admin"},
    ]
    settings = offline_settings(index, RAG_API__KEYS=json.dumps(keys), RAG_LOG__URL=f"sqlite:///{database}")
    with serve_asgi(create_app(settings, pipeline=RagPipeline(settings, embedder=minilm))) as url:
        yield url, database


def test_feedback_from_the_page_reaches_the_log_and_insights(logged_web: tuple[str, Path], browser) -> None:
    from playwright.sync_api import expect

    from rag.questionlog.schema import answers, feedback

    url, database = logged_web
    errors: list[str] = []
    context, page = page_with_key(browser, url, "web-reader-key", errors)
    page.fill("#ask-question", "What does VPN error 809 mean?")
    page.click("#ask-submit")
    page.wait_for_selector("#feedback:not([hidden])", timeout=120_000)
    page.fill("#feedback-comment", "It should name the firewall port too")
    page.click("#feedback-down")
    page.wait_for_selector("#feedback-state:has-text('rating and comment recorded')")
    expect(page.locator("#feedback-down")).to_have_attribute("aria-pressed", "true")
    shoot(page, "feedback-desktop")

    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        asked = connection.execute(select(answers.c.question, answers.c.key_name, answers.c.rating)).all()
        given = connection.execute(select(feedback.c.rating, feedback.c.comment, feedback.c.key_name)).all()
    engine.dispose()
    assert asked == [("What does VPN error 809 mean?", "web-reader", "down")]
    assert given == [("down", "It should name the firewall port too", "web-reader")]

    # A follow-up: the first answer moves up into the thread, where it can still be rated.
    page.fill("#ask-question", "How long must a password be?")
    page.click("#ask-submit")  # hides the feedback form until the new answer is in
    page.wait_for_selector("#feedback:not([hidden])", timeout=120_000)
    page.wait_for_selector("#thread .turn .turn-feedback:has-text('rated: No')")
    page.click("#thread .turn .turn-feedback button:has-text('Yes')")
    page.wait_for_selector("#thread .turn .turn-feedback:has-text('rated: Yes')")
    with engine.connect() as connection:
        ratings = connection.execute(select(answers.c.question, answers.c.rating).order_by(answers.c.created_at)).all()
    engine.dispose()
    assert ratings == [("What does VPN error 809 mean?", "up"), ("How long must a password be?", None)]

    # Insights: a read key is refused (the log holds what everyone asked); the admin sees the vote.
    page.click("nav a[data-page='insights']")
    page.wait_for_selector("#insights-banner.error:has-text('forbidden')")
    page.fill("#api-key", ADMIN_KEY)
    page.press("#api-key", "Enter")
    page.click("#insights-refresh")
    page.wait_for_selector("#insights-summary:has-text('2 questions')")
    expect(page.locator("#insights-per-day tbody tr")).to_have_count(1)
    expect(page.locator("#insights-down tbody tr")).to_have_count(0)  # the vote was changed to Yes
    assert "1 rated, voted down 0.0%" in page.text_content("#insights-summary")
    shoot(page, "insights-desktop")
    page.set_viewport_size(VIEWPORTS["phone"])
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    shoot(page, "insights-phone")
    assert errors == [], errors
    context.close()
