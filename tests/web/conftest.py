"""Fixtures for the dashboard tests: a live gateway that also serves /static/, the upstream
simulator, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_SERVICES

CHROMIUM = os.environ.get("MODELGATE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} — required in CI (MODELGATE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def web_simulator():
    from inference.simulator.server import running_simulator

    with running_simulator() as sim:
        yield sim


@pytest.fixture(scope="session")
def web_server():
    """The ASGI app as `make run` serves it: with /static/ (CSS, Chart.js)."""
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from config.asgi import application
    from tests.live import LiveServer

    server = LiveServer(ASGIStaticFilesHandler(application)).start()
    yield server
    server.stop()


@pytest.fixture
def browser(monkeypatch):
    """A headless Chromium (Debian's), or a skip — a failure in CI — saying why not."""
    if not Path(CHROMIUM).exists():
        _missing(f"needs Chromium at {CHROMIUM}: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("needs the playwright package: pip install -e '.[dev]'")
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous and never overlap with it.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def shots():
    """save(page, name): a full-page PNG under artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
