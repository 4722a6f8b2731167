"""Payload builders shared by the bad-input tests: the same content in either wire format."""

from __future__ import annotations

import base64
import io
import struct
import zlib


def png(size=(8, 8), color="red") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def png_bomb(side: int = 30_000) -> bytes:
    """A valid 1-bit PNG of side×side pixels (900 MP) that is ~100 KB on the wire."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + side // 8 + 1)
    compressor = zlib.compressobj(9)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def bmp() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(buffer, "BMP")
    return buffer.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def image_part(fmt: str, media_type: str, data: str) -> dict:
    if fmt == "openai":
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def chat(fmt: str, *, content=None, model="gpt-4o", max_tokens=16, **extra) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": content or "hello"}], **extra}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def with_images(fmt: str, parts: list[dict], model="gpt-4o") -> dict:
    return chat(fmt, content=[{"type": "text", "text": "what is this?"}, *parts], model=model)
