"""Helpers shared by the simulator tests."""

from __future__ import annotations

import base64
import io

from PIL import Image

CLAUDE = "claude-3-5-sonnet-20241022"


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def data_url(width: int, height: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png(width, height)).decode()


def b64png(width: int, height: int) -> str:
    return base64.b64encode(png(width, height)).decode()
