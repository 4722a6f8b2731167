"""``open_local`` directly (no relay): both wire formats, streams, JSON mode, refusals, the pool."""

from __future__ import annotations

import asyncio
import base64

import httpx
import openai
import orjson
import pytest
from asgiref.sync import async_to_sync

from inference.errors import InvalidRequest
from inference.local.adapter import open_local
from inference.local.errors import LocalModelError
from inference.translate import JSON_INSTRUCTION
from models_catalog.selectors import channels_for_model

from .conftest import render_png

pytestmark = pytest.mark.usefixtures("local_catalogue")

INSTRUCTION = "Read the text in this image."  # 28 bytes → 7 tokens


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def openai_body(*images: bytes, **extra) -> dict:
    parts = [{"type": "text", "text": INSTRUCTION}]
    parts += [{"type": "image_url", "image_url": {"url": data_url(png)}} for png in images]
    return {"model": "local-ocr", "messages": [{"role": "user", "content": parts}], **extra}


def anthropic_body(*images: bytes, **extra) -> dict:
    blocks = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(p).decode()},
        }
        for p in images
    ]
    blocks.append({"type": "text", "text": INSTRUCTION})
    return {
        "model": "local-ocr",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": blocks}],
        **extra,
    }


def channel():
    (local,) = [c for c in channels_for_model("local-ocr") if c.provider_type == "local"]
    return local


def call(path: str, body: dict):
    return _call(channel(), path, body)


@async_to_sync
async def _call(local, path: str, body: dict):
    response = await open_local(local, path, body)
    raw = await response.aread()
    lines = [line async for line in response.aiter_lines()]
    await response.aclose()
    assert response.is_closed
    return response, raw, lines


def sse_events(lines: list[str]) -> list[tuple[str | None, str]]:
    """(event name, data) per event; asserts the httpx line shape: blank line after each event."""
    events, current = [], []
    for line in lines:
        assert "\n" not in line
        if line:
            current.append(line)
            continue
        assert current, "two blank lines in a row"
        name = next((ln[7:] for ln in current if ln.startswith("event: ")), None)
        data = "\n".join(ln[6:] for ln in current if ln.startswith("data: "))
        events.append((name, data))
        current = []
    assert not current, "the stream must end with a blank line"
    return events


PNG = render_png("MODELGATE 2026")


def test_openai_completion(fake_engine):
    response, raw, _ = call("/chat/completions", openai_body(PNG))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = orjson.loads(raw)
    assert body["object"] == "chat.completion"
    assert body["model"] == "local-ocr"
    choice = body["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": "MODELGATE 2026\nInvoice 4711",
        "refusal": None,
    }
    assert choice["finish_reason"] == "stop"
    # 1 image × 1000 tokens (the catalogue's fixed rule) + ceil(28 / 4) text tokens; ceil(27 / 4) out.
    assert body["usage"] == {
        "prompt_tokens": 1007,
        "completion_tokens": 7,
        "total_tokens": 1014,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": 1000},
    }
    # Parsed by the relay's own usage reader as it would parse any upstream's.
    from inference.usage import openai_chat_usage

    usage = openai_chat_usage(body["usage"])
    assert (usage.input_tokens, usage.output_tokens) == (1007, 7)


def test_openai_stream(fake_engine):
    response, _raw, lines = call("/chat/completions", openai_body(PNG, stream=True))
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_events(lines)
    assert events[-1] == (None, "[DONE]")
    chunks = [orjson.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "MODELGATE 2026\nInvoice 4711"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 1007
    assert chunks[-1]["usage"]["completion_tokens"] == 7


def test_lines_are_exactly_httpx_aiter_lines(fake_engine):
    for body in (openai_body(PNG, stream=True), openai_body(PNG)):
        _, raw, lines = call("/chat/completions", body)

        async def httpx_lines(raw=raw):
            return [line async for line in httpx.Response(200, content=raw).aiter_lines()]

        assert lines == asyncio.run(httpx_lines())


def test_openai_json_mode(fake_engine):
    _, raw, _ = call("/chat/completions", openai_body(PNG, response_format={"type": "json_object"}))
    content = orjson.loads(raw)["choices"][0]["message"]["content"]
    document = orjson.loads(content)
    assert [line["text"] for line in document["lines"]] == ["MODELGATE 2026", "Invoice 4711"]
    first = document["lines"][0]
    assert first["confidence"] == 0.9999
    assert first["box"] == [[10, 20], [300, 20], [300, 70], [10, 70]]
    assert first["image"] == 0


def test_openai_json_schema_is_refused(fake_engine):
    body = openai_body(
        PNG, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
    )
    with pytest.raises(LocalModelError) as info:
        call("/chat/completions", body)
    assert info.value.status == 400
    assert fake_engine.calls == 0


def test_anthropic_message(fake_engine):
    _, raw, _ = call("/v1/messages", anthropic_body(PNG))
    message = orjson.loads(raw)
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": "MODELGATE 2026\nInvoice 4711"}]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"] == {"input_tokens": 1007, "output_tokens": 7}


def test_anthropic_stream(fake_engine):
    _, _, lines = call("/v1/messages", anthropic_body(PNG, stream=True))
    events = sse_events(lines)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    payloads = [orjson.loads(data) for _, data in events]
    assert all(p["type"] == name for p, name in zip(payloads, names, strict=True))
    text = "".join(p["delta"]["text"] for p in payloads if p["type"] == "content_block_delta")
    assert text == "MODELGATE 2026\nInvoice 4711"
    assert payloads[0]["message"]["usage"]["input_tokens"] == 1007
    assert payloads[-2]["usage"] == {"output_tokens": 7}
    assert payloads[-2]["delta"]["stop_reason"] == "end_turn"
    # The relay's Anthropic usage reader agrees.
    from inference.usage import anthropic_usage

    usage = anthropic_usage(payloads[0]["message"]["usage"], payloads[-2]["usage"])
    assert (usage.input_tokens, usage.output_tokens) == (1007, 7)


def test_anthropic_json_mode_through_the_relays_json_instruction(fake_engine):
    _, raw, _ = call("/v1/messages", anthropic_body(PNG, system=JSON_INSTRUCTION))
    document = orjson.loads(orjson.loads(raw)["content"][0]["text"])
    assert [line["text"] for line in document["lines"]] == ["MODELGATE 2026", "Invoice 4711"]


def test_every_image_is_read_and_billed(fake_engine):
    _, raw, _ = call("/chat/completions", openai_body(PNG, render_png("second")))
    body = orjson.loads(raw)
    assert fake_engine.calls == 2
    assert (
        body["choices"][0]["message"]["content"]
        == "MODELGATE 2026\nInvoice 4711\n\nMODELGATE 2026\nInvoice 4711"
    )
    assert body["usage"]["prompt_tokens"] == 2 * 1000 + 7


def test_max_tokens_cuts_the_answer(fake_engine):
    _, raw, _ = call("/chat/completions", openai_body(PNG, max_tokens=2))
    body = orjson.loads(raw)
    assert body["choices"][0]["message"]["content"] == "MODELGATE"[:8]
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


@pytest.mark.parametrize("path", ["/chat/completions", "/v1/messages"])
def test_text_only_request_is_refused_before_any_output(fake_engine, path):
    if path == "/chat/completions":
        body = {"model": "local-ocr", "messages": [{"role": "user", "content": "hello"}]}
    else:
        body = {"model": "local-ocr", "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}
    with pytest.raises(LocalModelError) as info:
        call(path, body)
    exc = info.value
    assert (exc.status, exc.code) == (400, "image_required")
    assert "reads the text in images" in exc.message
    assert fake_engine.calls == 0
    # What the relay does with it, unchanged: an ApplicationError for our renderers, and an
    # upstream status error its failover catches → not retried, a 400 for the caller.
    assert isinstance(exc, InvalidRequest)
    assert isinstance(exc, openai.APIStatusError)
    from inference.upstream import failure_from

    failure = failure_from(exc, channel())
    assert (failure.status, failure.retriable) == (400, False)
    assert "reads the text in images" in failure.message


def test_image_url_goes_through_the_ssrf_guard(fake_engine):
    body = openai_body()
    body["messages"][0]["content"].append(
        {"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}
    )
    with pytest.raises(LocalModelError) as info:
        call("/chat/completions", body)
    assert (info.value.status, info.value.code) == (400, "image_url_refused")
    assert fake_engine.calls == 0


def test_image_url_is_fetched_when_allowed(fake_engine, settings):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PNG)))
            self.end_headers()
            self.wfile.write(PNG)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.RELAY_FETCH_ALLOW_LOOPBACK_FOR_TESTS = True
    try:
        body = openai_body()
        url = f"http://127.0.0.1:{server.server_address[1]}/text.png"
        body["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": url}})
        _, raw, _ = call("/chat/completions", body)
    finally:
        server.shutdown()
    assert orjson.loads(raw)["usage"]["prompt_tokens"] == 1007
    assert fake_engine.shapes[0][:2] == (PNG_HEIGHT, PNG_WIDTH)


def _size(png):
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.size


PNG_WIDTH, PNG_HEIGHT = _size(PNG)


def test_other_endpoints_are_refused(fake_engine):
    with pytest.raises(LocalModelError) as info:
        call("/embeddings", {"model": "local-ocr", "input": "x"})
    assert info.value.status == 400


def test_without_the_ocr_extra_a_clear_503(fresh_ocr, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rapidocr", None)  # `import rapidocr` now fails
    with pytest.raises(LocalModelError) as info:
        call("/chat/completions", openai_body(PNG))
    exc = info.value
    assert (exc.status, exc.code) == (503, "local_model_unavailable")
    assert "install the `ocr` extra" in exc.message
    from inference.upstream import failure_from

    assert failure_from(exc, channel()).retriable  # another channel may serve the model


def test_transparent_png_is_read_on_white(fake_engine):
    call("/chat/completions", openai_body(render_png("MODELGATE", mode="RGBA")))
    image = fake_engine.last  # what the engine saw: BGR pixels
    assert image[0, 0].tolist() == [255, 255, 255]  # transparent → white paper
    assert image.min() == 0  # the black text is still there
