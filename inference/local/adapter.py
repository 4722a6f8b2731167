"""The ``local`` provider's adapter: a chat request in, an upstream-like response out.

``await open_local(channel, path, body)`` returns a ``LocalResponse`` that quacks like the
unread ``httpx`` response ``inference.upstream.open_stream`` returns for a remote provider
— ``status_code``, ``headers``, ``await aread()``, ``aiter_lines()`` (lines without their
newline, a blank line after each SSE event) and ``await aclose()`` — so the relay treats a
local channel like any other: same usage parsing, stream pump, settlement.

The wire format follows ``path``, as it would upstream:

* ``…/chat/completions`` — an OpenAI ``chat.completion``; with ``"stream": true``,
  ``chat.completion.chunk`` events, a final usage chunk (always: the relay needs it and
  hides it from callers who did not ask) and ``data: [DONE]``.
* ``…/messages`` (``/v1/messages``) — an Anthropic ``message``; with ``"stream": true``
  the Anthropic event sequence (message_start … message_stop).

All the work — image decoding, fetching http(s) image URLs behind the SSRF guard
(``inference.fetch``), OCR in the bounded pool — happens before the response object is
returned; a problem raises ``LocalModelError`` (see ``errors``) and nothing is produced.

Usage: input = Σ per-image tokens from the model's catalogue image rule (``fixed``: 1000
per image for ``local-ocr``) + ceil(UTF-8 bytes of the text parts / 4); output =
ceil(UTF-8 bytes of the answer / 4). The text parts (and system prompt) are counted, not
interpreted — OCR returns every line it finds — except that JSON mode is requested by
``response_format: {"type": "json_object"}`` (OpenAI) or, in the Anthropic format, by the
relay's JSON instruction (``inference.translate.JSON_INSTRUCTION``) in the system prompt.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass, field

import orjson

from config.asyncdb import db_call
from config.errors import ApplicationError
from models_catalog.info import ChannelInfo, ModelInfo
from models_catalog.pricing import image_input_tokens

from .errors import LocalModelError
from .ocr import Line, ocr_image

OPENAI = "openai"
ANTHROPIC = "anthropic"

# Catalogue models this provider runs → what runs them (for now: OCR).
LOCAL_MODELS = frozenset({"local-ocr"})

_NEWLINES = re.compile(r"\r\n|\r|\n")


# --- the response object ---------------------------------------------------------------------------


class LocalResponse:
    """A finished answer, read like an unread ``httpx`` response."""

    status_code = 200

    def __init__(self, content: bytes, media_type: str) -> None:
        self.headers = {"content-type": media_type}
        self.content = content
        self.is_closed = False

    async def aread(self) -> bytes:
        return self.content

    async def aiter_lines(self):
        """Lines as ``httpx.Response.aiter_lines`` yields them: no newline, blank lines kept."""
        lines = _NEWLINES.split(self.content.decode())
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it doesn't start another
        for line in lines:
            yield line
            await asyncio.sleep(0)  # let the relay's pump hand events over as they come

    async def aclose(self) -> None:
        self.is_closed = True


# --- reading the request -------------------------------------------------------------------------------


@dataclass
class ImageRef:
    param: str
    data: bytes | None = None  # inline images
    url: str | None = None  # http(s) images, fetched behind the SSRF guard
    detail: str = "auto"
    width: int = 0
    height: int = 0


@dataclass
class LocalRequest:
    wire_format: str
    model: str
    stream: bool
    json_mode: bool
    max_output_tokens: int | None
    images: list[ImageRef] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


def _refuse(message: str, param: str | None = None, code: str = "invalid_request") -> LocalModelError:
    return LocalModelError(message, code=code, extra={"param": param} if param else {})


def _decode(data: str, param: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("The image is not valid base64.", param, code="invalid_image") from None


def _inline_image(info_call, raw_b64: str, param: str, detail: str = "auto") -> ImageRef:
    try:
        info = info_call()  # inference.images: media type, size and pixel limits, header sanity
    except ApplicationError as exc:
        raise _as_local(exc) from None
    return ImageRef(
        param=param, data=_decode(raw_b64, param), detail=detail, width=info.width, height=info.height
    )


def _openai_request(body: dict) -> LocalRequest:
    from ..images import image_from_data_url

    if (body.get("n") or 1) != 1:
        raise _refuse("This model returns one choice per request: `n` must be 1.", "n")
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_schema":
        raise _refuse(
            'local-ocr answers JSON mode with its own document ({"lines": [{"text", "confidence", "box"}]}); '
            'send response_format {"type": "json_object"} instead of a json_schema.',
            "response_format",
        )
    req = LocalRequest(
        wire_format=OPENAI,
        model=str(body.get("model") or ""),
        stream=bool(body.get("stream")),
        json_mode=kind == "json_object",
        max_output_tokens=_max_tokens(body.get("max_completion_tokens") or body.get("max_tokens")),
    )
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            req.texts.append(content)
            continue
        for j, part in enumerate(content if isinstance(content, list) else ()):
            param = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                req.texts.append(str(part.get("text") or ""))
            elif kind == "image_url":
                image_url = part.get("image_url")
                if isinstance(image_url, str):
                    image_url = {"url": image_url}
                url = str((image_url or {}).get("url") or "").strip()
                detail = (image_url or {}).get("detail") or "auto"
                if url.startswith("data:"):
                    raw = url.partition(",")[2]
                    req.images.append(
                        _inline_image(
                            lambda url=url, param=param: image_from_data_url(
                                url, param=f"{param}.image_url.url"
                            ),
                            raw,
                            f"{param}.image_url.url",
                            detail,
                        )
                    )
                elif url.lower().startswith(("http://", "https://")):
                    req.images.append(ImageRef(param=f"{param}.image_url.url", url=url, detail=detail))
                else:
                    raise _refuse(
                        "An image URL must be https://, http:// or a base64 data: URL.",
                        f"{param}.image_url.url",
                    )
            else:
                raise _refuse(f"local-ocr reads text and image parts only, not `{kind}`.", f"{param}.type")
    return req


def _anthropic_blocks(content, param: str, req: LocalRequest) -> None:
    from ..images import image_from_base64

    if isinstance(content, str):
        req.texts.append(content)
        return
    for j, block in enumerate(content if isinstance(content, list) else ()):
        block_param = f"{param}[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            req.texts.append(str(block.get("text") or ""))
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64":
                data = str(source.get("data") or "")
                media_type = source.get("media_type")
                req.images.append(
                    _inline_image(
                        lambda data=data, media_type=media_type, p=block_param: image_from_base64(
                            data, media_type=media_type, param=f"{p}.source"
                        ),
                        data,
                        f"{block_param}.source",
                    )
                )
            elif source.get("type") == "url" and str(source.get("url") or "").lower().startswith(
                ("http://", "https://")
            ):
                req.images.append(ImageRef(param=f"{block_param}.source.url", url=source["url"].strip()))
            else:
                raise _refuse("An image source must be base64 or an http(s) url.", f"{block_param}.source")
        else:
            raise _refuse(f"local-ocr reads text and image blocks only, not `{kind}`.", f"{block_param}.type")


def _anthropic_request(body: dict) -> LocalRequest:
    from ..translate import JSON_INSTRUCTION

    req = LocalRequest(
        wire_format=ANTHROPIC,
        model=str(body.get("model") or ""),
        stream=bool(body.get("stream")),
        json_mode=False,
        max_output_tokens=_max_tokens(body.get("max_tokens")),
    )
    system = body.get("system")
    if system is not None:
        _anthropic_blocks(system, "system", req)
        req.json_mode = any(JSON_INSTRUCTION in text for text in req.texts)
    for i, message in enumerate(body.get("messages") or ()):
        if isinstance(message, dict):
            _anthropic_blocks(message.get("content"), f"messages.{i}.content", req)
    return req


def _max_tokens(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _as_local(exc: ApplicationError) -> LocalModelError:
    if isinstance(exc, LocalModelError):
        return exc
    return LocalModelError(exc.message, code=exc.code, status=exc.status, extra=exc.extra)


# --- running it -------------------------------------------------------------------------------------------


def _wire_format(path: str) -> str:
    path = path.rstrip("/")
    if path.endswith("/chat/completions"):
        return OPENAI
    if path.endswith("/messages"):
        return ANTHROPIC
    raise _refuse(f"The local provider answers chat requests only, not {path}.", code="unsupported_endpoint")


async def _image_bytes(image: ImageRef) -> tuple[bytes, int, int]:
    """The image's bytes and pixel size; http(s) URLs are fetched behind the SSRF guard."""
    from .. import fetch

    if image.data is not None:
        return image.data, image.width, image.height
    try:
        fetched = await fetch.fetch_image(image.url, param=image.param)
    except ApplicationError as exc:
        raise _as_local(exc) from None
    return fetched.data, fetched.info.width, fetched.info.height


def _tokens(text: str) -> int:
    return -(-len(text.encode()) // 4)


def _answer(results: list[list[Line]], json_mode: bool) -> str:
    if json_mode:
        lines = [{**line.as_dict(), "image": i} for i, lines in enumerate(results) for line in lines]
        return orjson.dumps({"lines": lines}).decode()
    return "\n\n".join("\n".join(line.text for line in lines) for lines in results if lines)


def _truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is None or _tokens(text) <= max_tokens:
        return text, False
    return text.encode()[: max_tokens * 4].decode(errors="ignore"), True


@dataclass(frozen=True)
class Answer:
    model: str
    text: str
    truncated: bool
    input_tokens: int
    image_tokens: int
    output_tokens: int


async def _model_info(name: str) -> ModelInfo:
    from models_catalog.selectors import model_resolve

    if name not in LOCAL_MODELS:
        raise _refuse(f"The local provider does not run '{name}'.", "model", code="model_not_found")
    try:
        return await db_call(model_resolve, name)
    except ApplicationError as exc:
        raise _as_local(exc) from None


async def run_local(req: LocalRequest) -> Answer:
    """OCR every image of the request; the answer and its usage."""
    model = await _model_info(req.model)
    if not req.images:
        where = "an `image_url` part (a data: URL)" if req.wire_format == OPENAI else "an `image` block"
        raise _refuse(
            f"{model.id} reads the text in images; this request has no image. Send {where}.",
            "messages",
            code="image_required",
        )
    loaded = await asyncio.gather(*(_image_bytes(image) for image in req.images))
    image_tokens = sum(
        image_input_tokens(model=model, width=w, height=h, detail=image.detail)
        for image, (_data, w, h) in zip(req.images, loaded, strict=True)
    )
    results = await asyncio.gather(*(ocr_image(data) for data, _w, _h in loaded))
    text, truncated = _truncate(_answer(list(results), req.json_mode), req.max_output_tokens)
    text_tokens = _tokens("".join(req.texts))
    return Answer(
        model=req.model,
        text=text,
        truncated=truncated,
        input_tokens=image_tokens + text_tokens,
        image_tokens=image_tokens,
        output_tokens=_tokens(text),
    )


async def open_local(channel: ChannelInfo, path: str, body: dict) -> LocalResponse:
    """Answer ``body`` (a chat request in the format of ``path``) with a local model.

    Raises ``LocalModelError`` (an ``InvalidRequest`` and an ``openai.APIStatusError``)
    before producing anything: 400 for a request it can't serve (no image, a bad image,
    an image URL the SSRF guard refuses, JSON schema), 503 ``local_model_unavailable``
    without the ``ocr`` extra.
    """
    wire_format = _wire_format(path)
    req = _openai_request(body) if wire_format == OPENAI else _anthropic_request(body)
    answer = await run_local(req)
    if wire_format == OPENAI:
        if req.stream:
            return LocalResponse(_openai_stream(answer), "text/event-stream")
        return LocalResponse(orjson.dumps(_openai_completion(answer)), "application/json")
    if req.stream:
        return LocalResponse(_anthropic_stream(answer), "text/event-stream")
    return LocalResponse(orjson.dumps(_anthropic_message(answer)), "application/json")


# --- OpenAI format ---------------------------------------------------------------------------------------


def _openai_usage(answer: Answer) -> dict:
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "image_tokens": answer.image_tokens},
    }


def _openai_completion(answer: Answer) -> dict:
    return {
        "id": "chatcmpl-local" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "length" if answer.truncated else "stop",
            }
        ],
        "usage": _openai_usage(answer),
        "system_fingerprint": None,
    }


def _sse(payload: dict | str, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


def _pieces(text: str) -> list[str]:
    """The answer in stream deltas: one per line (a JSON document in one piece)."""
    return [piece for piece in text.splitlines(keepends=True) if piece]


def _openai_stream(answer: Answer) -> bytes:
    base = {
        "id": "chatcmpl-local" + secrets.token_hex(12),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": answer.model,
        "system_fingerprint": None,
    }

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**base, "choices": [choice]})

    out = [chunk({"role": "assistant", "content": ""})]
    out += [chunk({"content": piece}) for piece in _pieces(answer.text)]
    out.append(chunk({}, "length" if answer.truncated else "stop"))
    out.append(_sse({**base, "choices": [], "usage": _openai_usage(answer)}))
    out.append(_sse("[DONE]"))
    return b"".join(out)


# --- Anthropic format --------------------------------------------------------------------------------


def _anthropic_message(answer: Answer) -> dict:
    return {
        "id": "msg_local_" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": [{"type": "text", "text": answer.text}],
        "stop_reason": "max_tokens" if answer.truncated else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens},
    }


def _anthropic_stream(answer: Answer) -> bytes:
    message = {
        **_anthropic_message(answer),
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": answer.input_tokens, "output_tokens": 0},
    }
    out = [
        _sse({"type": "message_start", "message": message}, "message_start"),
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
    ]
    out += [
        _sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
            "content_block_delta",
        )
        for piece in _pieces(answer.text)
    ]
    out += [
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        _sse(
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": "max_tokens" if answer.truncated else "end_turn",
                    "stop_sequence": None,
                },
                "usage": {"output_tokens": answer.output_tokens},
            },
            "message_delta",
        ),
        _sse({"type": "message_stop"}, "message_stop"),
    ]
    return b"".join(out)
