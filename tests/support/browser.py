"""Debian's headless Chromium, driven by Playwright, for the tests of the web page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .profiles import PROJECT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = PROJECT / "test-artifacts" / "screenshots"


def shoot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def page_with_key(browser: Any, url: str, key: str, errors: list[str], **context_options: Any) -> tuple[Any, Any]:
    """A new tab (desktop size) on the web page at `url` with `key` in use; uncaught page errors go
    to `errors`. Returns the browser context (close it) and the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{url}/#ask")
    page.fill("#api-key", key)
    page.press("#api-key", "Enter")
    page.wait_for_selector("#key-state:has-text('key in use')")
    return context, page
