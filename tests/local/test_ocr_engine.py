"""The OCR engine: loaded once per process, run in a bounded pool off the event loop, and real."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import render_png


def test_engine_is_built_once_under_concurrent_first_use(fake_engine, fresh_ocr, monkeypatch, settings):
    settings.LOCAL_OCR_MAX_CONCURRENCY = 4
    fresh_ocr.reset_pool()
    real_build = fresh_ocr._build_engine

    def slow_build():
        time.sleep(0.2)  # a race window: every pool thread asks for the engine at once
        return real_build()

    monkeypatch.setattr(fresh_ocr, "_build_engine", slow_build)
    png = render_png("x")

    async def main():
        return await asyncio.gather(*(fresh_ocr.ocr_image(png) for _ in range(8)))

    results = asyncio.run(main())
    assert len(fake_engine.builds) == 1
    assert fake_engine.calls == 8
    assert results[0][0].text == "MODELGATE 2026"


def test_concurrency_is_bounded_and_the_loop_stays_free(fake_engine, fresh_ocr, settings):
    settings.LOCAL_OCR_MAX_CONCURRENCY = 2
    fresh_ocr.reset_pool()
    fake_engine.delay = 0.3
    png = render_png("x")

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        tick = asyncio.create_task(ticker())
        started = time.monotonic()
        await asyncio.gather(*(fresh_ocr.ocr_image(png) for _ in range(6)))
        elapsed = time.monotonic() - started
        tick.cancel()
        return elapsed, ticks

    elapsed, ticks = asyncio.run(main())
    assert fake_engine.max_active == 2  # never more than the setting
    assert elapsed >= 3 * 0.3 - 0.05  # 6 calls, 2 at a time
    assert ticks >= 30  # the event loop kept running while OCR worked


def test_undecodable_bytes_are_a_400(fake_engine, fresh_ocr):
    from inference.local.errors import LocalModelError

    with pytest.raises(LocalModelError) as info:
        asyncio.run(fresh_ocr.ocr_image(b"\x89PNG\r\n\x1a\nnot really"))
    assert (info.value.status, info.value.code) == (400, "invalid_image")
    assert fake_engine.calls == 0


def test_real_rapidocr_reads_rendered_text(rapidocr):
    from inference.local import ocr

    lines = asyncio.run(ocr.ocr_image(render_png("MODELGATE 2026", "Invoice 4711")))
    assert [line.text for line in lines] == ["MODELGATE 2026", "Invoice 4711"]
    assert all(0.8 < line.confidence <= 1 for line in lines)
    top, bottom = lines
    assert len(top.box) == 4
    assert all(len(point) == 2 for point in top.box)
    assert top.box[0][1] < bottom.box[0][1]  # top to bottom
    engine = ocr.engine()
    asyncio.run(ocr.ocr_image(render_png("again")))
    assert ocr.engine() is engine  # loaded once per process


def test_real_rapidocr_on_a_blank_image(rapidocr):
    import io

    from PIL import Image

    from inference.local import ocr

    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "white").save(buf, "PNG")
    assert asyncio.run(ocr.ocr_image(buf.getvalue())) == []
