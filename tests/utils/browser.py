"""Real headless Chromium for UI tests, driven by Playwright with the system's browser.

Playwright's own browser download cannot work here (no internet), so the Debian `chromium` package is
used through `executable_path`. Screenshots go to test-artifacts/ for people to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.utils.services import unavailable

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        unavailable("Chromium is not installed (apt-get install -y chromium)")
    assert found is not None
    return found


@contextmanager
def open_page(**context: Any) -> Iterator[Any]:
    """A fresh Chromium page in its own context (no cookies shared); `context` goes to new_context()."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        ctx = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, "locale": "vi-VN", **context})
        try:
            yield ctx.new_page()
        finally:
            ctx.close()
            browser.close()


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """The page of open_page() as a fixture."""
    with open_page() as page:
        yield page


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
