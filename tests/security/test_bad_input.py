"""Bad input against the live gateway, in both wire formats.

Every case must be a clear 4xx in the caller's format (OpenAI ``{"error": {…}}`` at
/v1/chat/completions, Anthropic ``{"type": "error", …}`` at /v1/messages) and cost nothing:
balance unchanged, no usage record, no open hold. Cases already in tests/inference/test_relay.py
(OpenAI format: bad JSON, missing messages, negative/huge max_tokens, unknown model, bad base64)
are not repeated there; here they run in the Anthropic format and the rest in both.
"""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.security import bad_input_support as s

pytestmark = pytest.mark.django_db(transaction=True)

FORMATS = ["openai", "anthropic"]


def _post(gw, fmt: str, content: bytes, content_type: str = "application/json") -> httpx.Response:
    if fmt == "openai":
        url, headers = gw.openai_base + "/chat/completions", {"Authorization": f"Bearer {gw.secret}"}
    else:
        url, headers = gw.url + "/v1/messages", {"x-api-key": gw.secret, "anthropic-version": "2023-06-01"}
    return httpx.post(url, content=content, headers={**headers, "Content-Type": content_type}, timeout=30)


def _assert_refused_free(gw, fmt: str, response: httpx.Response, before: int, status=None) -> dict:
    from billing.services import billing_account_for_org

    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status:
        assert response.status_code == status, response.text[:300]
    body = response.json()
    if fmt == "openai":
        assert set(body) == {"error"} and {"message", "type", "code", "param"} <= set(body["error"]), body  # noqa: PT018
        assert body["error"]["message"]
    else:
        assert body["type"] == "error" and {"type", "message"} <= set(body["error"]), body  # noqa: PT018
        assert body["error"]["message"]
    assert gw.balance() == before
    assert gw.records() == []
    assert billing_account_for_org(org_id=gw.org.id).held_units == 0
    return body


def _json(obj) -> bytes:
    return orjson.dumps(obj)


# (id, builder(fmt) -> raw body, expected status or None for any 4xx)
CASES = [
    ("malformed-json", lambda f: b'{"model": "gpt-4o", "messages": [', 400),
    ("json-array", lambda f: b"[1, 2]", 400),
    ("json-string", lambda f: b'"hello"', 400),
    ("not-utf8", lambda f: b"\xff\xfe\x00garbage", 400),
    ("empty-body", lambda f: b"", 400),
    ("model-int", lambda f: _json(s.chat(f, model=42)), 400),
    ("model-null", lambda f: _json(s.chat(f, model=None)), 400),
    ("messages-string", lambda f: _json({"model": "gpt-4o", "messages": "hi", "max_tokens": 5}), 400),
    ("messages-empty", lambda f: _json({"model": "gpt-4o", "messages": [], "max_tokens": 5}), 400),
    ("message-not-object", lambda f: _json({"model": "gpt-4o", "messages": ["hi"], "max_tokens": 5}), 400),
    ("content-number", lambda f: _json(s.chat(f, content=12345)), 400),
    ("part-not-object", lambda f: _json(s.chat(f, content=["text"])), 400),
    ("stream-string", lambda f: _json(s.chat(f, stream="yes")), 400),
    ("max-tokens-string", lambda f: _json(s.chat(f, max_tokens="10")), 400),
    ("max-tokens-zero", lambda f: _json(s.chat(f, max_tokens=0)), 400),
    ("max-tokens-float", lambda f: _json(s.chat(f, max_tokens=1.5)), 400),
    ("max-tokens-bool", lambda f: _json(s.chat(f, max_tokens=True)), 400),
    (
        "max-tokens-absurd",
        lambda f: (
            _json(s.chat(f, max_tokens=None))[:-1] + b', "max_tokens": 1000000000000000000000000000000}'
        ),
        400,
    ),
    ("max-tokens-negative", lambda f: _json(s.chat(f, max_tokens=-1)), 400),
    ("unknown-model", lambda f: _json(s.chat(f, model="gpt-99-ultra")), 404),
    (
        "image-bad-base64",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/png", "@@@not base64@@@")])),
        400,
    ),
    (
        "image-not-an-image",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/png", s.b64(b"hello world"))])),
        400,
    ),
    (
        "image-unsupported-bmp",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/bmp", s.b64(s.bmp()))])),
        400,
    ),
    (
        "image-svg",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/svg+xml", s.b64(b"<svg/>"))])),
        400,
    ),
    (
        "image-truncated",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/png", s.b64(s.png((64, 64))[:60]))])),
        400,
    ),
    (
        "image-declared-jpeg-is-png",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/jpeg", s.b64(s.png()))])),
        400,
    ),
    (
        "image-decompression-bomb",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/png", s.b64(s.png_bomb()))])),
        400,
    ),
    (
        "too-many-images",
        lambda f: _json(s.with_images(f, [s.image_part(f, "image/png", s.b64(s.png()))] * 21)),
        400,
    ),
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(("build", "status"), [pytest.param(b, st, id=i) for i, b, st in CASES])
def test_bad_input_is_a_clear_4xx_in_the_callers_format_and_free(gateway, fmt, build, status):
    before = gateway.balance()
    response = _post(gateway, fmt, build(fmt))
    _assert_refused_free(gateway, fmt, response, before, status)


def test_anthropic_without_max_tokens_is_refused_like_anthropic_does(gateway):
    before = gateway.balance()
    response = _post(gateway, "anthropic", _json(s.chat("anthropic", max_tokens=None)))
    body = _assert_refused_free(gateway, "anthropic", response, before, 400)
    assert "max_tokens" in body["error"]["message"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_oversized_body_is_413_in_the_callers_format(gateway, fmt, settings):
    settings.RELAY_MAX_BODY_BYTES = 64 * 1024
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    before = gateway.balance()
    response = _post(gateway, fmt, _json(s.chat(fmt, content="x" * 100_000)))
    _assert_refused_free(gateway, fmt, response, before, 413)


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_content_type_is_refused(gateway, fmt):
    before = gateway.balance()
    response = _post(
        gateway, fmt, b"model=gpt-4o&messages=hi", content_type="application/x-www-form-urlencoded"
    )
    _assert_refused_free(gateway, fmt, response, before)


def test_embeddings_wrong_input_types(gateway):
    before = gateway.balance()
    for body in (
        {"model": "text-embedding-3-small", "input": 5},
        {"model": "text-embedding-3-small", "input": [1, {}]},
        {"model": "text-embedding-3-small"},
    ):
        response = httpx.post(
            gateway.openai_base + "/embeddings",
            json=body,
            headers={"Authorization": f"Bearer {gateway.secret}"},
        )
        _assert_refused_free(gateway, "openai", response, before, 400)


def test_image_edit_bomb_and_unsupported_uploads_are_refused(gateway):
    before = gateway.balance()
    for name, raw, media in (("bomb.png", s.png_bomb(), "image/png"), ("a.bmp", s.bmp(), "image/bmp")):
        response = httpx.post(
            gateway.openai_base + "/images/edits",
            data={"model": "gpt-image-1", "prompt": "x"},
            files={"image": (name, raw, media)},
            headers={"Authorization": f"Bearer {gateway.secret}"},
            timeout=30,
        )
        _assert_refused_free(gateway, "openai", response, before, 400)
