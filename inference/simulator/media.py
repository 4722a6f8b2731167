"""Small helpers: generated PNGs, deterministic embeddings, a minimal multipart parser."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import sys
from array import array
from functools import lru_cache

PALETTE = (
    (52, 101, 164),
    (78, 154, 6),
    (204, 0, 0),
    (196, 160, 0),
    (117, 80, 123),
    (206, 92, 0),
    (6, 152, 154),
    (85, 87, 83),
)
MAX_SIDE = 4096


def parse_size(size: str | None, default: str = "1024x1024") -> tuple[int, int]:
    if not size or size == "auto":
        size = default
    w, sep, h = str(size).lower().partition("x")
    if not sep:
        raise ValueError(size)
    width, height = int(w), int(h)
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(size)
    return width, height


def color_index(prompt: str) -> int:
    return hashlib.sha256(prompt.encode()).digest()[0] % len(PALETTE)


@lru_cache(maxsize=64)
def png_bytes(width: int, height: int, color: int = 0) -> bytes:
    """A real PNG of the given size: one solid colour (compresses to a few KB)."""
    from PIL import Image

    img = Image.new("RGB", (width, height), PALETTE[color % len(PALETTE)])
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


@lru_cache(maxsize=64)
def png_b64(width: int, height: int, color: int = 0) -> str:
    return base64.b64encode(png_bytes(width, height, color)).decode()


@lru_cache(maxsize=4096)
def embedding_vector(model: str, text: str, dims: int) -> array:
    """Unit-length float32 vector derived from sha-shake of (model, input): deterministic."""
    raw = hashlib.shake_256(f"{model}\0{text}".encode("utf-8", "surrogatepass")).digest(2 * dims)
    ints = array("h", raw)
    norm = math.sqrt(sum(v * v for v in ints)) or 1.0
    return array("f", (v / norm for v in ints))


def embedding_b64(vec: array) -> str:
    out = array("f", vec)
    if sys.byteorder != "little":
        out.byteswap()
    return base64.b64encode(out.tobytes()).decode()


def parse_multipart(
    body: bytes, content_type: str
) -> tuple[dict[str, str], list[tuple[str, str, str, bytes]]]:
    """(fields, files) of a multipart/form-data body; files are (field, filename, content type, data)."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode()
    fields: dict[str, str] = {}
    files: list[tuple[str, str, str, bytes]] = []
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):
            break
        part = raw[2:] if raw.startswith(b"\r\n") else raw
        head, sep, data = part.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disposition = headers.get("content-disposition", "")
        params = {}
        for item in disposition.split(";")[1:]:
            k, _, v = item.strip().partition("=")
            params[k.lower()] = v.strip('"')
        name = params.get("name", "")
        if "filename" in params:
            files.append((name, params["filename"], headers.get("content-type", ""), data))
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files
