"""Browser tests run in Debian's chromium (scripts/system-packages.txt), driven by Playwright.

Playwright is told where that browser is (``executable_path``) and never downloads one. A machine
without it fails these tests with a message saying what to install: a skipped browser test would
pass in silence where nothing was tested. Playwright gives each launch a fresh temporary profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Error, Page, ViewportSize, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
# Headless, and nothing that reaches beyond the loopback pages under test (no updates, sync,
# field trials or QUIC probes).
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
LAUNCH_TIMEOUT_MS = 60_000
ACTION_TIMEOUT_MS = 30_000
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the web front end is tested in Debian's chromium "
            "(`apt-get install chromium`, or scripts/bootstrap, which installs "
            "scripts/system-packages.txt); Playwright must not download a browser",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM),
                args=list(CHROMIUM_ARGS),
                timeout=LAUNCH_TIMEOUT_MS,
            )
        except Error as exc:
            pytest.fail(f"{CHROMIUM} did not start under Playwright: {exc}", pytrace=False)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page at phone width in a fresh context (no cookies or storage shared between tests).
    Uncaught script errors fail the test at teardown."""
    context = browser.new_context(viewport=PHONE)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
    finally:
        context.close()
    if errors:
        pytest.fail(f"the page raised: {errors}", pytrace=False)
