"""Fixtures for the local provider: images with known text, a fake engine, the live gateway."""

from __future__ import annotations

import importlib.util
import io
import threading
import time

import pytest

from tests.conftest import REQUIRE_SERVICES

# The live gateway of tests/inference (a uvicorn server in this process, an org with $5).
from tests.inference.conftest import catalogue, gateway, gateway_server, simulator  # noqa: F401

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def require_rapidocr() -> None:
    """Skip without the `ocr` extra — but fail in CI (MODELGATE_REQUIRE_SERVICES=1)."""
    if importlib.util.find_spec("rapidocr") and importlib.util.find_spec("onnxruntime"):
        return
    reason = "needs the `ocr` extra (rapidocr, onnxruntime): pip install -e '.[ocr]'"
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} — required in CI (MODELGATE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def rapidocr():
    require_rapidocr()


def render_png(*lines: str, size: int = 48, mode: str = "RGB") -> bytes:
    """A PNG with ``lines`` in black DejaVu Sans on white (on transparency with mode RGBA).

    Generous margins: PP-OCR's detector splits a tightly cropped line at its word gaps.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(FONT, size)
    pad = 60
    width = max(int(font.getlength(line)) for line in lines) + 2 * pad + 100
    height = 2 * pad + len(lines) * (size + 40)
    image = Image.new(mode, (width, height), "white" if mode == "RGB" else (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * (size + 40)), line, fill="black", font=font)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


class FakeEngine:
    """Stands in for RapidOCR: fixed lines, optional delay, counts concurrent calls."""

    def __init__(self, lines=(("MODELGATE 2026", 0.9999), ("Invoice 4711", 0.98)), delay: float = 0.0):
        self.lines = lines
        self.delay = delay
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.shapes = []
        self._lock = threading.Lock()

    def __call__(self, image):
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.shapes.append(image.shape)
            self.last = image
        try:
            time.sleep(self.delay)
            return _Result(self.lines)
        finally:
            with self._lock:
                self.active -= 1


class _Result:
    def __init__(self, lines):
        import numpy as np

        self.txts = tuple(text for text, _ in lines) or None
        self.scores = tuple(score for _, score in lines) or None
        self.boxes = (
            np.array(
                [
                    [[10, 20 + 60 * i], [300, 20 + 60 * i], [300, 70 + 60 * i], [10, 70 + 60 * i]]
                    for i in range(len(lines))
                ],
                dtype=float,
            )
            if lines
            else None
        )


@pytest.fixture
def fresh_ocr(monkeypatch, settings):
    """The OCR module with no engine and no pool yet (restored afterwards)."""
    from inference.local import ocr

    monkeypatch.setattr(ocr, "_engine", None)
    ocr.reset_pool()
    yield ocr
    ocr.reset_pool()


@pytest.fixture
def fake_engine(fresh_ocr, monkeypatch):
    engine = FakeEngine()
    builds = []

    def build():
        builds.append(1)
        return engine

    monkeypatch.setattr(fresh_ocr, "_build_engine", build)
    engine.builds = builds
    return engine


@pytest.fixture
def local_catalogue(db):
    """local-ocr (migration 0004, restored if a flush removed it) and an enabled local:ocr channel."""
    from models_catalog.services import catalogue_changed, channels_sync_local

    channels_sync_local(enabled=True)
    catalogue_changed()
