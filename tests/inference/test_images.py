"""Inline image validation with real images rendered by Pillow and hand-made bombs.

Every test runs with ``ImageFile.load`` booby-trapped: validation must never decode
pixels.
"""

from __future__ import annotations

import base64
import io
import struct
import timeit
import zlib

import pytest
from PIL import Image, ImageDraw, ImageFile

from inference.images import (
    ImageInfo,
    InvalidImage,
    image_from_base64,
    image_from_bytes,
    image_from_data_url,
)

W, H = 321, 123  # not square, so a swapped width/height shows


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "a test picture"  # ImageDescription
    return exif.tobytes()


EXIF = _exif()

MEDIA = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


@pytest.fixture(autouse=True)
def no_pixel_decode(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("validation decoded pixels (ImageFile.load was called)")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def picture(size: tuple[int, int] = (W, H)) -> Image.Image:
    im = Image.new("RGB", size, (240, 240, 230))
    draw = ImageDraw.Draw(im)
    for x in range(0, size[0], 9):
        draw.line((x, 0, size[0] - x, size[1]), fill=(x % 256, 90, 180), width=3)
    return im


def render(fmt: str, size: tuple[int, int] = (W, H), **options) -> bytes:
    out = io.BytesIO()
    picture(size).save(out, fmt, **options)
    return out.getvalue()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def data_url(raw: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{b64(raw)}"


def png_1bit(width: int, height: int) -> bytes:
    """A complete, valid, all-black 1-bit PNG; huge dimensions compress to a few KiB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb_20k() -> bytes:
    return png_1bit(20_000, 20_000)


# --- valid images ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_real_images_are_described_by_every_entry_point(fmt):
    raw = render(fmt)
    expected = ImageInfo(media_type=MEDIA[fmt], width=W, height=H, byte_size=len(raw))

    assert image_from_data_url(data_url(raw, MEDIA[fmt])) == expected
    assert image_from_base64(b64(raw), media_type=MEDIA[fmt]) == expected
    assert image_from_bytes(raw, declared_media_type=MEDIA[fmt]) == expected
    assert image_from_bytes(raw, declared_media_type=None) == expected
    assert image_from_bytes(bytearray(raw), declared_media_type=None) == expected


VARIANTS = {
    "png-rgba": lambda: _convert_render("RGBA", "PNG"),
    "png-palette": lambda: _convert_render("P", "PNG"),
    "png-interlaced": lambda: render("PNG", interlace=1),
    "jpeg-progressive": lambda: render("JPEG", progressive=True),
    "jpeg-grayscale": lambda: _convert_render("L", "JPEG"),
    "jpeg-with-exif-thumbnail-segment": lambda: render("JPEG", exif=EXIF),
    "mpo": lambda: _mpo(),
    "gif-animated": lambda: _animated("GIF"),
    "webp-lossless": lambda: render("WEBP", lossless=True),
    "webp-extended": lambda: render("WEBP", exif=EXIF),
    "webp-animated": lambda: _animated("WEBP"),
}


def _convert_render(mode: str, fmt: str) -> bytes:
    out = io.BytesIO()
    picture().convert(mode).save(out, fmt)
    return out.getvalue()


def _animated(fmt: str) -> bytes:
    out = io.BytesIO()
    frames = [picture(), picture().rotate(180)]
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def _mpo() -> bytes:
    out = io.BytesIO()
    picture().save(out, "MPO", save_all=True, append_images=[picture().rotate(180)])
    return out.getvalue()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_format_variants_report_exact_size(variant):
    raw = VARIANTS[variant]()
    info = image_from_bytes(raw, declared_media_type=None)

    assert (info.width, info.height) == (W, H)
    # The pixel limit is exact: w×h passes, one pixel less refuses, naming the size.
    image_from_bytes(raw, declared_media_type=None, max_pixels=W * H)
    with pytest.raises(InvalidImage, match=f"image is {W}×{H} pixels"):
        image_from_bytes(raw, declared_media_type=None, max_pixels=W * H - 1)


def test_mpo_counts_as_jpeg():
    assert image_from_bytes(_mpo(), declared_media_type="image/jpeg").media_type == "image/jpeg"


def test_image_jpg_is_read_as_jpeg():
    raw = render("JPEG")

    assert image_from_data_url(data_url(raw, "image/jpg")).media_type == "image/jpeg"
    assert image_from_base64(b64(raw), media_type="IMAGE/JPG").media_type == "image/jpeg"


def test_data_url_parameters_and_case_are_tolerated():
    raw = render("PNG")

    info = image_from_data_url(f"DATA:Image/PNG;name=cat.png;BASE64,{b64(raw)}")

    assert info.media_type == "image/png"


def test_1024_png_is_inspected_in_well_under_a_millisecond():
    raw = render("PNG", size=(1024, 1024))
    assert image_from_bytes(raw, declared_media_type="image/png").width == 1024

    best = min(
        timeit.repeat(lambda: image_from_bytes(raw, declared_media_type="image/png"), number=20, repeat=5)
    )

    assert best / 20 < 0.001


# --- malformed envelopes -------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        "not base64!!",
        "iVBORw0KGgo",  # missing padding
        "iVBO Rw0K",  # whitespace
        "iVBO\nRw0K",
        "iVBO-_0K",  # URL-safe alphabet
        "iVBOR€==",
    ],
)
def test_invalid_base64_is_refused(data):
    with pytest.raises(InvalidImage) as caught:
        image_from_base64(data, media_type="image/png", param="messages.0.content.1.source")

    assert caught.value.status == 400
    assert caught.value.code == "invalid_image"
    assert caught.value.message == "messages.0.content.1.source: image data is not valid base64"
    assert caught.value.extra == {"param": "messages.0.content.1.source"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "not a data: URL"),
        ("data:image/png,iVBORw0KGgo=", "must be base64-encoded"),
        ("data:image/png;base64", "malformed data URL"),
        ("data:image/png;base64,", "image data is empty"),
    ],
)
def test_malformed_data_urls_are_refused(url, message):
    with pytest.raises(InvalidImage, match=message):
        image_from_data_url(url)


def test_data_url_given_as_anthropic_base64_is_explained():
    raw = render("PNG")

    with pytest.raises(InvalidImage, match="plain base64, not a data URL"):
        image_from_base64(data_url(raw, "image/png"), media_type="image/png")


@pytest.mark.parametrize("media_type", ["image/bmp", "application/pdf", "image/svg+xml", "image/tiff", ""])
def test_unsupported_media_types_are_refused(media_type):
    raw = render("PNG")

    with pytest.raises(InvalidImage, match="unsupported image type") as caught:
        image_from_data_url(data_url(raw, media_type), param="messages[0].content[1].image_url.url")

    assert "image/png, image/jpeg, image/gif or image/webp" in caught.value.message
    assert caught.value.extra["param"] == "messages[0].content[1].image_url.url"
    with pytest.raises(InvalidImage, match="unsupported image type"):
        image_from_bytes(raw, declared_media_type=media_type)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PDF"])
def test_other_real_formats_are_not_images_we_take(fmt):
    raw = render(fmt)

    with pytest.raises(InvalidImage, match="not a valid PNG, JPEG, GIF or WebP image"):
        image_from_bytes(raw, declared_media_type=None)
    with pytest.raises(InvalidImage, match="not a valid PNG image"):
        image_from_base64(b64(raw), media_type="image/png")


@pytest.mark.parametrize(
    ("fmt", "declared", "message"),
    [
        ("JPEG", "image/png", "declared image/png but the data is JPEG"),
        ("PNG", "image/jpeg", "declared image/jpeg but the data is PNG"),
        ("WEBP", "image/gif", "declared image/gif but the data is WebP"),
        ("GIF", "image/webp", "declared image/webp but the data is GIF"),
    ],
)
def test_declared_type_must_match_the_data(fmt, declared, message):
    raw = render(fmt)

    with pytest.raises(InvalidImage, match=message):
        image_from_data_url(data_url(raw, declared))
    with pytest.raises(InvalidImage, match=message):
        image_from_base64(b64(raw), media_type=declared)
    with pytest.raises(InvalidImage, match=message):
        image_from_bytes(raw, declared_media_type=declared)


# --- corrupt and truncated -------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
@pytest.mark.parametrize("keep", ["half", "all-but-one", "header-only"])
def test_truncated_images_are_refused(fmt, keep):
    raw = render(fmt)
    cut = {"half": len(raw) // 2, "all-but-one": len(raw) - 1, "header-only": 30}[keep]

    with pytest.raises(InvalidImage, match=r"truncated or corrupt|not a valid") as caught:
        image_from_base64(b64(raw[:cut]), media_type=MEDIA[fmt], param="p")

    assert caught.value.extra == {"param": "p"}


def test_png_with_broken_header_checksum_is_refused():
    raw = bytearray(render("PNG"))
    raw[20] ^= 0xFF  # inside IHDR's height; its CRC no longer matches

    with pytest.raises(InvalidImage, match="not a valid PNG image"):
        image_from_bytes(bytes(raw), declared_media_type="image/png")


@pytest.mark.parametrize(
    "raw",
    [b"\x00" * 100, b"hello, world", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, b"\xff\xd8\xff" + b"\x00" * 50],
)
def test_garbage_is_refused(raw):
    with pytest.raises(InvalidImage, match=r"not a valid|truncated"):
        image_from_bytes(raw, declared_media_type=None)


def test_empty_bytes_are_refused():
    with pytest.raises(InvalidImage, match="image data is empty"):
        image_from_bytes(b"", declared_media_type="image/png")


# --- limits --------------------------------------------------------------------------------


def test_bomb_generator_makes_real_pngs(monkeypatch):
    small = png_1bit(100, 60)
    assert image_from_bytes(small, declared_media_type="image/png").width == 100

    monkeypatch.undo()  # lift the load() trap: prove the generator's output fully decodes
    with Image.open(io.BytesIO(small)) as im:
        im.load()
        assert (im.size, im.mode, im.getextrema()) == ((100, 60), "1", (0, 0))


def test_decompression_bomb_is_refused_without_decoding(bomb_20k):
    assert len(bomb_20k) < 200_000  # 400 megapixels in a few KiB

    with pytest.raises(InvalidImage) as caught:
        image_from_data_url(data_url(bomb_20k, "image/png"), param="messages[0].content[0].image_url.url")

    assert caught.value.message == (
        "messages[0].content[0].image_url.url: image is 20000×20000 pixels; the limit is 50 megapixels"
    )
    assert caught.value.extra == {"param": "messages[0].content[0].image_url.url"}


def test_pillows_own_bomb_error_is_refused_too(bomb_20k):
    # With our limit lifted past 400 MP, Pillow's DecompressionBombError (> 2 × 89.5 MP) stops it.
    with pytest.raises(InvalidImage, match="image is 20000×20000 pixels"):
        image_from_bytes(bomb_20k, declared_media_type="image/png", max_pixels=10**9)


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_pillows_bomb_warning_is_refused_when_escalated():
    raw = png_1bit(10_000, 10_000)  # 100 MP: Pillow warns (> 89.5 MP) but does not raise

    with pytest.raises(InvalidImage, match="image is 10000×10000 pixels"):
        image_from_bytes(raw, declared_media_type=None, max_pixels=200_000_000)


def test_pixel_limit_below_pillows_threshold():
    raw = png_1bit(8_000, 8_000)  # 64 MP: Pillow has no objection, our 50 MP limit does

    with pytest.raises(InvalidImage, match="image is 8000×8000 pixels; the limit is 50 megapixels"):
        image_from_bytes(raw, declared_media_type="image/png")
    assert image_from_bytes(raw, declared_media_type="image/png", max_pixels=64_000_000).width == 8000


def test_pixel_limit_comes_from_settings(settings):
    settings.RELAY_MAX_IMAGE_PIXELS = 1_000_000
    raw = png_1bit(1_001, 1_000)

    with pytest.raises(InvalidImage, match="the limit is 1 megapixels"):
        image_from_bytes(raw, declared_media_type=None)


@pytest.mark.parametrize("chunk", ["VP8X", "VP8L", "VP8 "])
def test_webp_bomb_is_refused_before_pillow_opens_it(chunk, monkeypatch):
    options = {"VP8X": {"exif": EXIF}, "VP8L": {"lossless": True}}
    raw = bytearray(render("WEBP", **options.get(chunk, {})))
    assert raw[12:16] == chunk.encode()
    if chunk == "VP8X":
        raw[24:30] = (16_000 - 1).to_bytes(3, "little") * 2
    elif chunk == "VP8L":
        raw[21:25] = ((16_000 - 1) | (16_000 - 1) << 14).to_bytes(4, "little")
    else:
        raw[26:30] = (16_000).to_bytes(2, "little") * 2
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))

    with pytest.raises(InvalidImage, match="image is 16000×16000 pixels"):
        image_from_bytes(bytes(raw), declared_media_type="image/webp")

    assert opened == []  # Pillow's WebP reader allocates its canvas on open


def test_oversized_by_byte_count():
    raw = render("PNG")
    assert len(raw) > 1000

    with pytest.raises(InvalidImage, match=r"image is \d+(\.\d)? KiB; the limit is 1000 bytes") as caught:
        image_from_data_url(data_url(raw, "image/png"), max_bytes=1000, param="x")
    assert caught.value.extra == {"param": "x"}
    with pytest.raises(InvalidImage, match="the limit is 1000 bytes"):
        image_from_bytes(raw, declared_media_type=None, max_bytes=1000)
    assert image_from_bytes(raw, declared_media_type=None, max_bytes=len(raw)).byte_size == len(raw)
    assert image_from_base64(b64(raw), media_type="image/png", max_bytes=len(raw)).byte_size == len(raw)


def test_size_is_checked_before_decoding():
    # Not base64 at all, but far too long: refused for its size, without decoding.
    junk = "!" * 40_000

    with pytest.raises(InvalidImage, match=r"image is 29\.3 KiB; the limit is 20 KiB"):
        image_from_base64(junk, media_type="image/png", max_bytes=20 * 1024)


def test_byte_limit_comes_from_settings(settings):
    settings.RELAY_MAX_IMAGE_BYTES = 2 * 1024 * 1024
    three_mib = "A" * (4 * 1024 * 1024)  # decodes to 3 MiB

    with pytest.raises(InvalidImage, match="image is 3 MiB; the limit is 2 MiB"):
        image_from_base64(three_mib, media_type="image/png")


def test_messages_never_echo_the_data():
    secret = "c2VjcmV0LXBheWxvYWQ" * 50 + "!"

    for call in (
        lambda: image_from_base64(secret, media_type="image/png"),
        lambda: image_from_data_url(f"data:image/png;base64,{secret}"),
        lambda: image_from_bytes(b"secret-payload" * 50, declared_media_type=None),
        lambda: image_from_bytes(b"secret-payload" * 50, declared_media_type="image/gif"),
    ):
        with pytest.raises(InvalidImage) as caught:
            call()
        assert "c2VjcmV0" not in caught.value.message
        assert "secret-payload" not in caught.value.message


def test_echoed_media_type_is_truncated():
    with pytest.raises(InvalidImage) as caught:
        image_from_data_url(f"data:image/{'x' * 300};base64,AAAA")

    assert len(caught.value.message) < 160


def test_without_param_the_message_is_bare():
    with pytest.raises(InvalidImage) as caught:
        image_from_base64("%%%%", media_type="image/png")

    assert caught.value.message == "image data is not valid base64"
    assert caught.value.extra == {"param": None}
