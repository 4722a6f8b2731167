"""Offline OCR with RapidOCR (PP-OCR detection, orientation and recognition ONNX models
bundled in the ``rapidocr`` wheel — the ``ocr`` extra).

* The engine is built **once per process**, lazily, under a lock (the first request pays
  ~1 s to build it and a few seconds to load the models; later calls reuse it).
* Recognition runs in a **bounded thread pool** of ``LOCAL_OCR_MAX_CONCURRENCY`` threads
  (default 2), never on the event loop; more requests than that wait their turn in the
  pool's queue. One engine is shared by the threads: RapidOCR loads its sub-models under
  its own locks and ONNX Runtime sessions may run concurrently.
* Only the default (bundled) models are used: other models would be downloaded at run time.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from .errors import LocalModelError, LocalModelUnavailable

logger = logging.getLogger("modelgate.local")

DEFAULT_MAX_CONCURRENCY = 2
INSTALL_HINT = "install the `ocr` extra: pip install -e '.[ocr]' (make run does)"


@dataclass(frozen=True)
class Line:
    text: str
    confidence: float  # 0..1
    # 4 corners (x, y) in pixels: top-left, top-right, bottom-right, bottom-left
    box: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict:
        return {"text": self.text, "confidence": self.confidence, "box": [list(p) for p in self.box]}


_engine = None
_engine_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _build_engine():
    """A RapidOCR engine with its bundled default models (replaced in tests)."""
    try:
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise LocalModelUnavailable(
            f"The local OCR model is not installed on this server ({exc.name or 'rapidocr'} is missing): "
            f"{INSTALL_HINT}."
        ) from None
    return RapidOCR(params={"Global.log_level": "error"})


def engine():
    """The process's engine, built on first use (thread-safe, at most once)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = _build_engine()
                logger.info("local OCR engine loaded")
    return _engine


def max_concurrency() -> int:
    return max(int(getattr(settings, "LOCAL_OCR_MAX_CONCURRENCY", DEFAULT_MAX_CONCURRENCY)), 1)


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=max_concurrency(), thread_name_prefix="local-ocr")
    return _pool


def reset_pool() -> None:
    """Forget the thread pool (it is rebuilt with the current setting on next use). Tests."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)


def _point(xy) -> tuple[int, int]:
    return round(float(xy[0])), round(float(xy[1]))


def _recognise(data: bytes) -> list[Line]:
    """Runs in a pool thread: decode, detect, recognise."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)  # the first frame of an animated GIF / WebP
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                # Transparent pixels become white paper, not black (text is usually dark).
                rgba = image.convert("RGBA")
                rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
            else:
                rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise LocalModelError(f"The image could not be decoded: {exc}", code="invalid_image") from None
    import numpy as np

    bgr = np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1])  # RapidOCR takes OpenCV's BGR order
    result = engine()(bgr)
    texts = result.txts or ()
    scores = result.scores or ()
    boxes = result.boxes if result.boxes is not None else ()
    return [
        Line(text=str(text), confidence=round(float(score), 4), box=tuple(_point(p) for p in box))
        for text, score, box in zip(texts, scores, boxes, strict=False)
    ]


async def ocr_image(data: bytes) -> list[Line]:
    """The text lines in an image (PNG, JPEG, GIF, WebP bytes), top to bottom.

    Runs in the bounded pool; raises ``LocalModelUnavailable`` (503) without the ``ocr``
    extra and ``LocalModelError`` (400, ``invalid_image``) for bytes that aren't an image.
    """
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(), _recognise, data)
