"""Validate images sent inline (data URLs, Anthropic base64 sources, uploads).

Every entry point returns an ``ImageInfo`` or raises ``InvalidImage`` (400,
``invalid_image``) whose message says what is wrong, never echoing the data.

What is checked, in order, without decoding any pixels:

1. the declared media type is one of ``ALLOWED_MEDIA_TYPES`` (``image/jpg`` is read
   as ``image/jpeg``);
2. the size: estimated from the base64 length *before* decoding, then exactly;
3. strict base64 (``validate=True``: no whitespace, URL-safe alphabet or missing
   padding);
4. the dimensions read straight from the file header (PNG IHDR, GIF screen, JPEG
   SOF, WebP VP8/VP8L/VP8X) against ``max_pixels``, *before* Pillow sees the data —
   Pillow's WebP reader allocates its canvas when it opens a file;
5. ``PIL.Image.open`` (header only, no ``load()``), restricted to the four formats:
   unidentifiable or corrupt headers are refused, its ``size`` is checked against
   ``max_pixels`` again; Pillow's own ``DecompressionBombError`` (and the warning,
   should anyone turn warnings into errors) is refused the same way. The global
   warning filters are not touched: ``warnings.catch_warnings`` is not thread-safe
   and the pixel checks above already refuse anything Pillow would warn about
   (unless ``max_pixels`` is raised above ``PIL.Image.MAX_IMAGE_PIXELS``);
6. the real format matches the declared media type (strict: Anthropic refuses a
   mismatch, so a mislabelled image is refused here rather than upstream);
7. the file is structurally complete: PNG chunks run to IEND, JPEG has an EOI
   after its first scan, GIF ends with its trailer (NUL padding allowed), WebP is
   as long as its RIFF header says. Corruption inside compressed pixel data is
   not detected — that would need a full decode.

Limits come from ``settings.RELAY_MAX_IMAGE_BYTES`` (default 20 MiB) and
``settings.RELAY_MAX_IMAGE_PIXELS`` (default 50 000 000) unless passed explicitly.
"""

from __future__ import annotations

import base64
import binascii
import io
import zlib
from dataclasses import dataclass

from django.conf import settings
from PIL import Image

from config.errors import ApplicationError

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 50_000_000

# media type -> Pillow format name
ALLOWED_MEDIA_TYPES = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
_MEDIA_TYPE_ALIASES = {"image/jpg": "image/jpeg"}
_FORMAT_MEDIA_TYPES = {fmt: media for media, fmt in ALLOWED_MEDIA_TYPES.items()} | {"MPO": "image/jpeg"}
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "GIF": "GIF", "WEBP": "WebP"}
_PILLOW_FORMATS = tuple(ALLOWED_MEDIA_TYPES.values())
_SUPPORTED_TEXT = "image/png, image/jpeg, image/gif or image/webp"


class InvalidImage(ApplicationError):
    """An inline image is malformed, unsupported or over a limit (400)."""

    code = "invalid_image"
    status = 400


@dataclass(frozen=True)
class ImageInfo:
    media_type: str  # the real type, e.g. "image/png"
    width: int
    height: int
    byte_size: int  # decoded bytes


# --- public API -------------------------------------------------------------------


def image_from_data_url(
    url: str,
    *,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    param: str | None = None,
) -> ImageInfo:
    """Validate a ``data:<media type>;base64,<data>`` URL and describe its image.

    ``param`` (e.g. ``"messages[0].content[1].image_url"``) names the offending field
    in the error's message and ``extra["param"]``.
    """
    media_type, data = _split_data_url(url, param)
    return image_from_base64(
        data, media_type=media_type, max_bytes=max_bytes, max_pixels=max_pixels, param=param
    )


def image_from_base64(
    data: str,
    *,
    media_type: str,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    param: str | None = None,
) -> ImageInfo:
    """Validate base64 image ``data`` declared as ``media_type`` (Anthropic's source)."""
    declared = _allowed_media_type(media_type, param)
    byte_limit = _byte_limit(max_bytes)
    raw = _decode_base64(data, byte_limit, param)
    return _inspect(raw, declared, byte_limit, _pixel_limit(max_pixels), param)


def image_from_bytes(
    raw: bytes,
    *,
    declared_media_type: str | None,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    param: str | None = None,
) -> ImageInfo:
    """Validate raw image bytes (a multipart upload); ``None`` declares no type."""
    declared = None if declared_media_type is None else _allowed_media_type(declared_media_type, param)
    data = raw if isinstance(raw, bytes) else bytes(raw)
    return _inspect(data, declared, _byte_limit(max_bytes), _pixel_limit(max_pixels), param)


# --- parsing the envelope -----------------------------------------------------------


def _invalid(message: str, param: str | None) -> InvalidImage:
    return InvalidImage(f"{param}: {message}" if param else message, extra={"param": param})


def _byte_limit(explicit: int | None) -> int:
    return explicit if explicit is not None else getattr(settings, "RELAY_MAX_IMAGE_BYTES", DEFAULT_MAX_BYTES)


def _pixel_limit(explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    return getattr(settings, "RELAY_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)


def _split_data_url(url: str, param: str | None) -> tuple[str, str]:
    if not isinstance(url, str) or url[:5].lower() != "data:":
        raise _invalid("image URL is not a data: URL", param)
    comma = url.find(",", 0, 512)
    if comma < 0:
        raise _invalid("malformed data URL: expected data:<media type>;base64,<data>", param)
    media_type, *parameters = url[5:comma].split(";")
    if not parameters or parameters[-1].strip().lower() != "base64":
        raise _invalid("data URL must be base64-encoded (data:<media type>;base64,<data>)", param)
    return media_type, url[comma + 1 :]


def _allowed_media_type(media_type: str, param: str | None) -> str:
    normal = str(media_type).strip().lower()
    normal = _MEDIA_TYPE_ALIASES.get(normal, normal)
    if normal not in ALLOWED_MEDIA_TYPES:
        shown = str(media_type)[:64] or "(none)"
        raise _invalid(f"unsupported image type {shown!r}; use {_SUPPORTED_TEXT}", param)
    return normal


def _decode_base64(data: str, byte_limit: int, param: str | None) -> bytes:
    if not isinstance(data, str | bytes):
        raise _invalid("image data must be a base64 string", param)
    if not data:
        raise _invalid("image data is empty", param)
    tail = data[-2:]
    padding = len(tail) - len(tail.rstrip("=" if isinstance(tail, str) else b"="))
    estimated = len(data) * 3 // 4 - padding
    if estimated > byte_limit:
        raise _too_large(estimated, byte_limit, param)
    if isinstance(data, str) and data[:5].lower() == "data:":
        raise _invalid("image data must be plain base64, not a data URL", param)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("image data is not valid base64", param) from None


def _too_large(size: int, limit: int, param: str | None) -> InvalidImage:
    return _invalid(f"image is {_size_text(size)}; the limit is {_size_text(limit)}", param)


def _size_text(n: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


# --- inspecting the bytes -----------------------------------------------------------


def _inspect(
    raw: bytes, declared: str | None, byte_limit: int, pixel_limit: int, param: str | None
) -> ImageInfo:
    if not raw:
        raise _invalid("image data is empty", param)
    if len(raw) > byte_limit:
        raise _too_large(len(raw), byte_limit, param)
    peeked = _peek_size(raw)
    if peeked is not None:
        _check_pixels(*peeked, pixel_limit, param)
    fmt, width, height = _open_header(raw, declared, peeked, pixel_limit, param)
    media_type = _FORMAT_MEDIA_TYPES[fmt]
    if declared is not None and declared != media_type:
        raise _invalid(f"declared {declared} but the data is {_FORMAT_NAMES[fmt]}", param)
    if width <= 0 or height <= 0:
        raise _invalid("image has no pixels", param)
    _check_pixels(width, height, pixel_limit, param)
    if not _COMPLETE[_FORMAT_NAMES[fmt]](raw):
        raise _invalid(f"image data is truncated or corrupt ({_FORMAT_NAMES[fmt]})", param)
    return ImageInfo(media_type=media_type, width=width, height=height, byte_size=len(raw))


def _open_header(
    raw: bytes, declared: str | None, peeked: tuple[int, int] | None, pixel_limit: int, param: str | None
) -> tuple[str, int, int]:
    """Format and size as Pillow reads them from the header; pixels are never loaded."""
    try:
        with Image.open(io.BytesIO(raw), formats=_PILLOW_FORMATS) as im:
            return im.format, im.size[0], im.size[1]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        if peeked:
            raise _pixels_error(*peeked, pixel_limit, param) from None
        raise _invalid(f"image exceeds the limit of {_megapixels(pixel_limit)} megapixels", param) from None
    except Exception:  # Pillow raises many exception types on hostile input
        kind = _FORMAT_NAMES[ALLOWED_MEDIA_TYPES[declared]] if declared else "PNG, JPEG, GIF or WebP"
        raise _invalid(f"image data is not a valid {kind} image", param) from None


def _check_pixels(width: int, height: int, pixel_limit: int, param: str | None) -> None:
    if width * height > pixel_limit:
        raise _pixels_error(width, height, pixel_limit, param)


def _pixels_error(width: int, height: int, pixel_limit: int, param: str | None) -> InvalidImage:
    return _invalid(
        f"image is {width}×{height} pixels; the limit is {_megapixels(pixel_limit)} megapixels", param
    )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


# --- headers, read without Pillow -----------------------------------------------------

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def _peek_size(raw: bytes) -> tuple[int, int] | None:
    """Width and height from the file header, or ``None`` if not recognised here."""
    if raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR" and len(raw) >= 33:
        if zlib.crc32(raw[12:29]) != int.from_bytes(raw[29:33], "big"):
            return None  # a damaged header: let Pillow call it corrupt
        return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        return int.from_bytes(raw[6:8], "little"), int.from_bytes(raw[8:10], "little")
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return _webp_size(raw)
    if raw[:2] == b"\xff\xd8":
        return _jpeg_layout(raw)[0]
    return None


def _webp_size(raw: bytes) -> tuple[int, int] | None:
    chunk = raw[12:16]
    if chunk == b"VP8X" and len(raw) >= 30:
        return int.from_bytes(raw[24:27], "little") + 1, int.from_bytes(raw[27:30], "little") + 1
    if chunk == b"VP8L" and len(raw) >= 25 and raw[20] == 0x2F:
        bits = int.from_bytes(raw[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(raw) >= 30 and raw[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(raw[26:28], "little") & 0x3FFF, int.from_bytes(raw[28:30], "little") & 0x3FFF
    return None


def _jpeg_layout(raw: bytes) -> tuple[tuple[int, int] | None, int | None]:
    """(width, height) of the first SOF segment and where the first scan's data starts."""
    size = None
    pos, end = 2, len(raw)
    while pos + 4 <= end:
        if raw[pos] != 0xFF:
            return size, None
        marker = raw[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(raw[pos + 2 : pos + 4], "big")
        if marker in _JPEG_SOF and size is None and pos + 9 <= end:
            size = (
                int.from_bytes(raw[pos + 7 : pos + 9], "big"),
                int.from_bytes(raw[pos + 5 : pos + 7], "big"),
            )
        if marker == 0xDA:  # start of scan
            return size, pos + 2 + length
        pos += 2 + length
    return size, None


# --- structural completeness ------------------------------------------------------------


def _png_complete(raw: bytes) -> bool:
    pos, end = 8, len(raw)
    while pos + 8 <= end:
        if raw[pos + 4 : pos + 8] == b"IEND":
            return pos + 12 <= end
        pos += 12 + int.from_bytes(raw[pos : pos + 4], "big")
    return False


def _jpeg_complete(raw: bytes) -> bool:
    scan = _jpeg_layout(raw)[1]
    return scan is not None and raw.rfind(b"\xff\xd9", scan) >= 0  # EOI is normally last


def _gif_complete(raw: bytes) -> bool:
    return raw.rstrip(b"\x00").endswith(b"\x3b")


def _webp_complete(raw: bytes) -> bool:
    return len(raw) >= 8 + int.from_bytes(raw[4:8], "little")


_COMPLETE = {"PNG": _png_complete, "JPEG": _jpeg_complete, "GIF": _gif_complete, "WebP": _webp_complete}
