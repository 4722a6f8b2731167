"""Request → reply logic for the OpenAI and Anthropic wire formats (no I/O here).

A handler returns a :class:`Reply`: either a JSON body or a list of ready-to-send SSE
events (bytes), plus what the fault injection needs (where content starts, the
vendor-shaped mid-stream error event, a malformed event).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import media
from .controls import Controls
from .usage import (
    PromptCache,
    UsageError,
    canonical_json,
    count_anthropic_input,
    count_openai_prompt,
    fit_text,
    image_output_tokens,
    json_reply,
    output_tokens_for,
    reply_base,
    text_tokens,
)


class RequestError(Exception):
    """A client error the simulator answers in the vendor's error shape."""

    def __init__(
        self, status: int, message: str, *, kind: str | None = None, code: str | None = None, param=None
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    events: list[bytes] | None = None
    prelude: int = 1  # events before the first content event
    content_events: int = 0
    error_event: bytes = b""
    malformed_event: bytes = b""
    usage: dict | None = None
    summary: dict = field(default_factory=dict)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    raw: bytes | None = None  # pre-encoded body (e.g. images)
    content_type: bytes = b"application/json"


# --------------------------------------------------------------------------- error bodies

OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout", None),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", None),
    503: ("service_unavailable", None),
    504: ("server_error", "timeout"),
}
ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
FAULT_MESSAGES = {
    429: "Rate limit reached (simulated). Please try again later.",
    500: "The server had an error while processing your request (simulated).",
    502: "Bad gateway (simulated).",
    503: "The engine is currently overloaded (simulated). Please try again later.",
    504: "Gateway timeout (simulated).",
    529: "Overloaded (simulated)",
}


def openai_error(
    status: int, message: str, kind: str | None = None, code: str | None = None, param=None
) -> dict:
    default_kind, default_code = OPENAI_ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": message,
            "type": kind or default_kind,
            "param": param,
            "code": code or default_code,
        }
    }


def anthropic_error(status: int, message: str, kind: str | None = None) -> dict:
    default = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind or default, "message": message}, "request_id": _req_id()}


def _req_id() -> str:
    return "req_sim" + uuid.uuid4().hex[:20]


def sse(data: bytes, event: str | None = None) -> bytes:
    if event:
        return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


def split_text(text: str, k: int) -> list[str]:
    """``text`` in ``k`` near-equal pieces (k is clamped to 1..len(text)); [] for ''."""
    if not text:
        return []
    k = max(1, min(k, len(text)))
    size, extra = divmod(len(text), k)
    pieces, start = [], 0
    for i in range(k):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _usage_variant(usage: dict, mode: str) -> dict | None:
    if mode == "missing":
        return None
    if mode in ("zero", "negative"):
        value = 0 if mode == "zero" else -1

        def walk(d: dict) -> dict:
            return {
                k: (walk(v) if isinstance(v, dict) else value if isinstance(v, int) else v)
                for k, v in d.items()
            }

        return walk(usage)
    return usage


def _tool_call_index(content_texts: list[str]) -> bool:
    return any("weather" in t.lower() for t in content_texts)


def vendor_of(model: str) -> str:
    m = model.lower()
    if m.startswith("grok"):
        return "xai"
    if m.startswith(("qwen", "qwq")):
        return "qwen"
    if m.startswith(("gemini", "models/gemini")):
        return "gemini"
    if m.startswith("claude"):
        return "anthropic"
    return "openai"


# --------------------------------------------------------------------------- OpenAI chat

OPENAI_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
NON_CHAT_PREFIXES = ("gpt-image", "dall-e", "text-embedding", "tts-", "whisper")


def _openai_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return []


def openai_directive_texts(body: dict) -> list[str]:
    texts: list[str] = []
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            texts.extend(_openai_texts(msg.get("content")))
    return texts


def _validate_openai_chat(body: dict) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "you must provide a model parameter", param="model")
    if model.lower().startswith(NON_CHAT_PREFIXES):
        raise RequestError(
            404,
            f"The model `{model}` is not a chat model and is not supported in the "
            "v1/chat/completions endpoint.",
            code="model_not_found",
            param="model",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty array.", param="messages")
    pending: set[str] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in OPENAI_ROLES:
            raise RequestError(400, f"Invalid value for 'messages[{i}].role'.", param=f"messages[{i}].role")
        role = msg["role"]
        if role == "tool":
            if msg.get("tool_call_id") not in pending:
                raise RequestError(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            continue
        pending = set()
        if role == "assistant":
            pending = {str(c.get("id")) for c in msg.get("tool_calls") or [] if isinstance(c, dict)}
        content = msg.get("content")
        if content is None and role != "assistant":
            raise RequestError(
                400, f"Invalid value for 'messages[{i}].content'.", param=f"messages[{i}].content"
            )
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") not in (
                    "text",
                    "image_url",
                    "input_audio",
                    "file",
                    "refusal",
                ):
                    raise RequestError(
                        400,
                        f"Invalid content part type at messages[{i}].content[{j}].",
                        param=f"messages[{i}].content[{j}].type",
                    )
                if part["type"] == "image_url" and role != "user":
                    raise RequestError(
                        400,
                        f"Image URLs are only allowed for messages with role 'user', but this message "
                        f"with role '{role}' contains an image URL.",
                        param=f"messages[{i}].content[{j}]",
                    )


def _forced_function(body: dict, tools: list) -> str | None:
    choice = body.get("tool_choice")
    names = [str((t.get("function") or {}).get("name")) for t in tools if isinstance(t, dict)]
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            raise RequestError(400, f"Invalid tool_choice: no function named {name!r}.", param="tool_choice")
        return name
    if choice == "required":
        return _pick_tool(names)
    return None


def _pick_tool(names: list[str]) -> str:
    return next((n for n in names if "weather" in n.lower()), names[0])


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text") or "") if isinstance(p, dict) else str(p)
            for p in content
            if not isinstance(p, dict) or p.get("type") in (None, "text")
        )
    return "" if content is None else str(content)


def openai_chat(body: dict, controls: Controls, cache: PromptCache) -> Reply:
    _validate_openai_chat(body)
    model = body["model"]
    vendor = vendor_of(model)
    try:
        count = count_openai_prompt(body)
    except UsageError as exc:
        raise RequestError(400, str(exc), code="invalid_image_format") from exc
    cached = cache.apply(count.breakpoints)
    messages = body["messages"]
    last = messages[-1]
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    tool_choice = body.get("tool_choice")
    stream = bool(body.get("stream"))
    created = int(time.time())
    cid = "chatcmpl-sim" + uuid.uuid4().hex[:20]

    call_name = None
    if tools and tool_choice != "none":
        call_name = _forced_function(body, tools)
        if (
            call_name is None
            and last.get("role") == "user"
            and _tool_call_index(_openai_texts(last.get("content")))
        ):
            call_name = _pick_tool([str((t.get("function") or {}).get("name")) for t in tools])

    cap = min(
        (int(v) for v in (body.get("max_tokens"), body.get("max_completion_tokens")) if isinstance(v, int)),
        default=None,
    )
    finish = "stop"
    content: str | None = None
    tool_call = None
    if call_name is not None:
        from .usage import example_for_schema

        tool = next(t for t in tools if (t.get("function") or {}).get("name") == call_name)
        args = orjson.dumps(example_for_schema((tool.get("function") or {}).get("parameters") or {})).decode()
        tool_call = {
            "id": ("function-call-" if vendor == "gemini" else "call_") + uuid.uuid4().hex[:24],
            "type": "function",
            "function": {"name": call_name, "arguments": args},
        }
        n = text_tokens(call_name) + text_tokens(args)
        finish = "tool_calls"
    else:
        fmt = body.get("response_format") or {}
        if last.get("role") == "tool":
            base = reply_base(model, tool_result=_tool_result_text(last.get("content")))
        elif controls.echo:
            base = reply_base(model, echo=" ".join(_openai_texts(last.get("content"))))
        else:
            base = reply_base(model)
        n = output_tokens_for(base, controls.tokens)
        if fmt.get("type") == "json_object":
            content = json_reply(model, n)
        elif fmt.get("type") == "json_schema":
            content = json_reply(model, n, (fmt.get("json_schema") or {}).get("schema") or {})
        else:
            content = fit_text(base, n)
        n = (len(content.encode()) + 3) // 4
        if cap is not None and n > cap:
            n = cap
            content = fit_text(content, n)
            finish = "length"

    reasoning = controls.reasoning
    completion = n if vendor == "xai" else n + reasoning
    prompt_details: dict[str, int] = {"cached_tokens": cached.read, "audio_tokens": 0}
    if count.explicit_cache:
        prompt_details["cache_creation_input_tokens"] = cached.creation
    usage = {
        "prompt_tokens": count.total,
        "completion_tokens": completion,
        "total_tokens": count.total + n + reasoning,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    reported = _usage_variant(usage, controls.usage)
    summary = {
        "messages": count.messages,
        "images": count.images,
        "tools": count.tools,
        "tool_call": call_name,
        "finish_reason": finish,
    }
    fingerprint = None if vendor == "qwen" else "fp_sim"

    if not stream:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "refusal": None,
            "annotations": [],
        }
        if tool_call:
            message["tool_calls"] = [tool_call]
        out = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        }
        if reported is not None:
            out["usage"] = reported
        return Reply(body=out, usage=reported, summary=summary)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base_chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": fingerprint,
    }
    if include_usage:
        base_chunk["usage"] = None

    def chunk(delta: dict, finish_reason: str | None = None, **extra) -> bytes:
        data = {
            **base_chunk,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            **extra,
        }
        return sse(orjson.dumps(data))

    usage_on_last = vendor == "gemini" and include_usage and reported is not None
    events: list[bytes] = []
    if tool_call:
        args = tool_call["function"]["arguments"]
        if vendor == "gemini":
            events.append(
                chunk({"role": "assistant", "content": None, "tool_calls": [{"index": 0, **tool_call}]})
            )
            pieces: list[str] = []
        else:
            head = {
                "index": 0,
                "id": tool_call["id"],
                "type": "function",
                "function": {"name": call_name, "arguments": ""},
            }
            events.append(
                chunk({"role": "assistant", "content": None, "tool_calls": [head], "refusal": None})
            )
            pieces = split_text(args, controls.chunks or min(len(args), 16))
        events.extend(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces)
    else:
        events.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        pieces = split_text(content or "", controls.chunks or min(max(n, 1), 64))
        events.extend(chunk({"content": p}) for p in pieces)
    content_events = len(events) - 1
    if usage_on_last:
        events.append(chunk({}, finish, usage=reported))
    else:
        events.append(chunk({}, finish))
        if include_usage and reported is not None:
            events.append(sse(orjson.dumps({**base_chunk, "choices": [], "usage": reported})))
    events.append(b"data: [DONE]\n\n")
    error = openai_error(500, "The server had an error while processing your request (simulated).")
    return Reply(
        events=events,
        prelude=1,
        content_events=content_events,
        error_event=sse(orjson.dumps(error)),
        malformed_event=b'data: {"id": "'
        + cid.encode()
        + b'", "object": "chat.completion.chunk", "choices": [{\n\n',
        usage=reported if include_usage else None,
        summary=summary,
    )


# --------------------------------------------------------------------------- OpenAI embeddings

EMBEDDING_DIMS = {
    "text-embedding-3-large": 3072,
    "text-embedding-3-small": 1536,
    "text-embedding-ada-002": 1536,
}


def embeddings(body: dict, controls: Controls) -> Reply:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, "you must provide a model parameter", param="model")
    raw = body.get("input")
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw)):
        inputs = [raw]
    elif isinstance(raw, list) and raw:
        inputs = raw
    else:
        raise RequestError(400, "'$.input' is invalid. Please check the API reference.", param="input")
    dims = body.get("dimensions") or EMBEDDING_DIMS.get(model, 1536)
    if not isinstance(dims, int) or not 1 <= dims <= 8192:
        raise RequestError(400, "Invalid 'dimensions'.", param="dimensions")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise RequestError(
            400, "Invalid 'encoding_format': expected 'float' or 'base64'.", param="encoding_format"
        )
    tokens = 0
    data = []
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            if not item:
                raise RequestError(400, "'$.input' is invalid: empty string.", param="input")
            tokens += text_tokens(item)
            key = item
        elif isinstance(item, list) and item and all(isinstance(x, int) for x in item):
            tokens += len(item)
            key = "tokens:" + ",".join(map(str, item))
        else:
            raise RequestError(400, "'$.input' is invalid. Please check the API reference.", param="input")
        vec = media.embedding_vector(model, key, dims)
        emb: Any = media.embedding_b64(vec) if encoding == "base64" else vec.tolist()
        data.append({"object": "embedding", "index": i, "embedding": emb})
    usage = _usage_variant({"prompt_tokens": tokens, "total_tokens": tokens}, controls.usage)
    out: dict[str, Any] = {"object": "list", "data": data, "model": model}
    if usage is not None:
        out["usage"] = usage
    return Reply(body=out, usage=usage, summary={"inputs": len(inputs)})


# --------------------------------------------------------------------------- OpenAI images

IMAGE_MODELS_WITH_USAGE = ("gpt-image",)


def images(fields: dict, files: list, controls: Controls, base_url: str, *, edit: bool) -> Reply:
    model = str(fields.get("model") or ("gpt-image-1" if edit else "dall-e-2"))
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "you must provide a prompt", param="prompt")
    try:
        n = int(fields.get("n") or 1)
    except (TypeError, ValueError) as exc:
        raise RequestError(400, "Invalid 'n'.", param="n") from exc
    if not 1 <= n <= 10:
        raise RequestError(400, "Invalid 'n': must be between 1 and 10.", param="n")
    size = str(fields.get("size") or "auto")
    try:
        width, height = media.parse_size(size)
    except ValueError as exc:
        raise RequestError(400, f"Invalid value for 'size': {size!r}.", param="size") from exc
    image_tokens = 0
    if edit:
        images_in = [f for f in files if f[0] in ("image", "image[]")]
        if not images_in:
            raise RequestError(400, "you must provide an image", param="image")
        for _name, _filename, _ctype, data in images_in:
            from .usage import image_info, openai_image_tokens

            try:
                w, h, _fmt = image_info(data)
            except UsageError as exc:
                raise RequestError(
                    400, "Invalid input image - format must be in ['png', 'jpeg', 'webp']."
                ) from exc
            image_tokens += openai_image_tokens(w, h, "high")
    gpt_image = model.startswith(IMAGE_MODELS_WITH_USAGE)
    color = media.color_index(prompt)
    response_format = fields.get("response_format") or "url"
    items = []
    for _ in range(n):
        if gpt_image or response_format == "b64_json":
            items.append({"b64_json": media.png_b64(width, height, color)})
        else:
            items.append({"url": f"{base_url}/_sim/image.png?size={width}x{height}&color={color}"})
        if model.startswith("dall-e-3"):
            items[-1]["revised_prompt"] = f"Simulated image: {prompt}"
    out: dict[str, Any] = {"created": int(time.time()), "data": items}
    usage = None
    if gpt_image:
        quality = str(fields.get("quality") or "auto")
        q = quality if quality in ("low", "medium", "high") else "medium"
        size_key = f"{width}x{height}"
        text = text_tokens(prompt)
        out_tokens = image_output_tokens(model, size_key, q, n)
        usage = _usage_variant(
            {
                "input_tokens": text + image_tokens,
                "input_tokens_details": {"text_tokens": text, "image_tokens": image_tokens},
                "output_tokens": out_tokens,
                "total_tokens": text + image_tokens + out_tokens,
            },
            controls.usage,
        )
        out.update({"background": "opaque", "output_format": "png", "quality": q, "size": size_key})
        if usage is not None:
            out["usage"] = usage
    return Reply(body=out, usage=usage, summary={"images": n, "size": f"{width}x{height}"})


# --------------------------------------------------------------------------- Anthropic messages

ANTHROPIC_BLOCK_TYPES = {
    "text",
    "image",
    "tool_use",
    "tool_result",
    "document",
    "thinking",
    "redacted_thinking",
    "search_result",
}


def _anthropic_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    if isinstance(content, list):
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                out.append(str(block.get("text") or ""))
            elif block.get("type") == "tool_result":
                out.extend(_anthropic_texts(block.get("content")))
    return out


def anthropic_directive_texts(body: dict) -> list[str]:
    texts = _anthropic_texts(body.get("system"))
    for msg in body.get("messages") or []:
        if isinstance(msg, dict):
            texts.extend(_anthropic_texts(msg.get("content")))
    return texts


def _validate_anthropic(body: dict) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise RequestError(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        raise RequestError(400, "max_tokens: Field required")
    if max_tokens < 1:
        raise RequestError(400, "max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages: at least one message is required")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise RequestError(400, "system: Input should be a valid string or list")
    previous_tool_uses: set[str] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise RequestError(400, f"messages.{i}: Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ("user", "assistant"):
            raise RequestError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if not isinstance(content, str | list):
            raise RequestError(400, f"messages.{i}.content: Field required")
        tool_uses: set[str] = set()
        for j, block in enumerate(content if isinstance(content, list) else []):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in ANTHROPIC_BLOCK_TYPES:
                raise RequestError(400, f"messages.{i}.content.{j}: Input tag {kind!r} found is not valid")
            if kind == "tool_use":
                if role != "assistant":
                    raise RequestError(
                        400,
                        f"messages.{i}.content.{j}: tool_use blocks are only allowed in assistant messages",
                    )
                tool_uses.add(str(block.get("id")))
            elif kind == "tool_result":
                if role != "user" or block.get("tool_use_id") not in previous_tool_uses:
                    raise RequestError(
                        400,
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message.",
                    )
            elif kind == "image" and role != "user":
                raise RequestError(
                    400, f"messages.{i}.content.{j}: image blocks are only allowed in user messages"
                )
        previous_tool_uses = tool_uses


def _anthropic_forced_tool(body: dict, names: list[str]) -> tuple[str | None, bool]:
    """(forced tool name or None, tools allowed)."""
    choice = body.get("tool_choice") or {}
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "none":
        return None, False
    if kind == "tool":
        if choice.get("name") not in names:
            raise RequestError(400, f"tool_choice.name: tool {choice.get('name')!r} not found in tools")
        return str(choice.get("name")), True
    if kind == "any":
        return _pick_tool(names), True
    return None, True


def anthropic_input_usage(body: dict, cache: PromptCache, *, record: bool = True) -> tuple[dict, Any]:
    try:
        count = count_anthropic_input(body)
    except UsageError as exc:
        raise RequestError(400, str(exc)) from exc
    cached = cache.apply(count.breakpoints, record=record)
    usage = {
        "input_tokens": count.total - cached.read - cached.creation,
        "cache_creation_input_tokens": cached.creation,
        "cache_read_input_tokens": cached.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cached.creation_5m,
            "ephemeral_1h_input_tokens": cached.creation_1h,
        },
    }
    return usage, count


def anthropic_messages(body: dict, controls: Controls, cache: PromptCache) -> Reply:
    _validate_anthropic(body)
    model = body["model"]
    input_usage, count = anthropic_input_usage(body, cache)
    messages = body["messages"]
    last = messages[-1]
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    names = [str(t.get("name")) for t in tools]
    stream = bool(body.get("stream"))
    mid = "msg_sim" + uuid.uuid4().hex[:20]

    call_name = None
    if tools:
        forced, allowed = _anthropic_forced_tool(body, names)
        call_name = forced
        last_has_result = isinstance(last.get("content"), list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
        )
        if (
            call_name is None
            and allowed
            and last.get("role") == "user"
            and not last_has_result
            and _tool_call_index(_anthropic_texts(last.get("content")))
        ):
            call_name = _pick_tool(names)

    blocks: list[dict] = []
    stop = "end_turn"
    if call_name is not None:
        from .usage import example_for_schema

        tool = next(t for t in tools if t.get("name") == call_name)
        tool_input = example_for_schema(tool.get("input_schema") or {})
        preface = f"Simulated tool call from {model}."
        blocks = [
            {"type": "text", "text": preface},
            {
                "type": "tool_use",
                "id": "toolu_sim" + uuid.uuid4().hex[:16],
                "name": call_name,
                "input": tool_input,
            },
        ]
        out_tokens = (
            text_tokens(preface) + text_tokens(call_name) + (len(canonical_json(tool_input)) + 3) // 4
        )
        stop = "tool_use"
    else:
        results = [
            _tool_result_text(b.get("content"))
            for b in (last.get("content") if isinstance(last.get("content"), list) else [])
            if isinstance(b, dict) and b.get("type") == "tool_result"
        ]
        if results:
            base = reply_base(model, tool_result="; ".join(results))
        elif controls.echo:
            base = reply_base(model, echo=" ".join(_anthropic_texts(last.get("content"))))
        else:
            base = reply_base(model)
        out_tokens = output_tokens_for(base, controls.tokens)
        if out_tokens > body["max_tokens"]:
            out_tokens = body["max_tokens"]
            stop = "max_tokens"
        blocks = [{"type": "text", "text": fit_text(base, out_tokens)}]

    usage = {**input_usage, "output_tokens": out_tokens, "service_tier": "standard"}
    reported = _usage_variant(usage, controls.usage)
    summary = {
        "messages": count.messages,
        "images": count.images,
        "tools": count.tools,
        "tool_call": call_name,
        "stop_reason": stop,
    }
    message: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
    }
    if not stream:
        if reported is not None:
            message["usage"] = reported
        return Reply(
            body=message, usage=reported, summary=summary, headers=[(b"request-id", _req_id().encode())]
        )

    def ev(event: str, data: dict) -> bytes:
        return sse(orjson.dumps(data), event)

    start = {**message, "content": [], "stop_reason": None}
    if reported is not None:
        start["usage"] = {
            **reported,
            "output_tokens": 1 if controls.usage == "normal" else reported["output_tokens"],
        }
    events = [ev("message_start", {"type": "message_start", "message": start})]
    content_events = 0
    prelude = None
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(
                ev(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
            )
            if index == 0:
                events.append(ev("ping", {"type": "ping"}))
            k = controls.chunks or min(max(out_tokens if call_name is None else 4, 1), 64)
            deltas = [{"type": "text_delta", "text": p} for p in split_text(block["text"], k)]
        else:
            events.append(
                ev(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
                )
            )
            partial = canonical_json(block["input"]).decode()
            deltas = [
                {"type": "input_json_delta", "partial_json": p}
                for p in split_text(partial, controls.chunks or 8)
            ]
        if prelude is None:
            prelude = len(events)
        for delta in deltas:
            events.append(
                ev("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            )
            content_events += 1
        events.append(ev("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta_event: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": stop, "stop_sequence": None},
    }
    if reported is not None:
        delta_event["usage"] = {"output_tokens": reported["output_tokens"]}
    events.append(ev("message_delta", delta_event))
    events.append(ev("message_stop", {"type": "message_stop"}))
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded (simulated)"}}
    return Reply(
        events=events,
        prelude=prelude or 1,
        content_events=content_events,
        error_event=ev("error", error),
        malformed_event=(
            b"event: content_block_delta\n"
            b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_de\n\n'
        ),
        usage=reported,
        summary=summary,
        headers=[(b"request-id", _req_id().encode())],
    )


def anthropic_count_tokens(body: dict) -> Reply:
    if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list):
        raise RequestError(400, "model and messages are required")
    try:
        count = count_anthropic_input(body)
    except UsageError as exc:
        raise RequestError(400, str(exc)) from exc
    return Reply(body={"input_tokens": count.total}, summary={"messages": count.messages})
