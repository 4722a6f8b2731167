"""Translation between the OpenAI chat and Anthropic messages wire formats.

Pure functions (and two small stream translators) over parsed JSON: no I/O, no Django.
The relay uses them when a model's channel speaks the other format than the caller:

* requests: ``openai_to_anthropic_request`` / ``anthropic_to_openai_request``;
* responses: ``anthropic_to_openai_response`` / ``openai_to_anthropic_response``;
* streams: ``AnthropicToOpenAIStream`` / ``OpenAIToAnthropicStream`` — fed one parsed
  upstream event at a time, they return the SSE bytes to send to the caller;
* usage: ``anthropic_usage_to_openai`` / ``openai_usage_to_anthropic``.

Billing never uses the translated usage: the relay settles from the upstream's own usage,
parsed in the upstream's format (``inference.usage``). The translated usage carries the
same numbers so what the caller sees matches what it is charged.

The mapping is documented in docs/relay.md.
"""

from __future__ import annotations

import secrets
import time

import orjson

from .errors import InvalidRequest

# --- small helpers -----------------------------------------------------------------------------------

FINISH_TO_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}

JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else: no prose, no code fences."


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _compact(value) -> str:
    return orjson.dumps(value).decode()


def _sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _event(kind: str, payload: dict) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _data_url_to_source(url: str, param: str) -> dict:
    head, _, data = url.partition(",")
    media_type = head[5:].split(";", 1)[0].strip().lower() or "image/png"
    if media_type == "image/jpg":
        media_type = "image/jpeg"
    if ";base64" not in head:
        raise InvalidRequest("Image data URLs must be base64-encoded.", extra={"param": param})
    return {"type": "base64", "media_type": media_type, "data": data}


def _text_of(content) -> str:
    """The text of an OpenAI content (string or parts) or Anthropic content (string or blocks)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return str(content)


# --- usage ---------------------------------------------------------------------------------------------


def anthropic_usage_to_openai(usage: dict | None) -> dict | None:
    """Anthropic ``usage`` → OpenAI ``usage``: the prompt includes cache reads and writes."""
    if not isinstance(usage, dict):
        return None
    uncached = _int(usage.get("input_tokens"))
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    output = _int(usage.get("output_tokens"))
    prompt = uncached + read + write
    details = {"cached_tokens": read}
    if write:
        details["cache_creation_input_tokens"] = write  # as Qwen reports it
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": details,
    }


def openai_usage_to_anthropic(usage: dict | None) -> dict | None:
    """OpenAI ``usage`` → Anthropic ``usage`` (disjoint counts, as Anthropic reports them).

    Reasoning tokens a vendor leaves outside ``completion_tokens`` (Grok) are output.
    """
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool) and total > prompt + completion:
        completion = total - prompt
    details = (
        usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    )
    read = _int(details.get("cached_tokens"))
    write = _int(details.get("cache_creation_input_tokens"))
    return {
        "input_tokens": max(prompt - read - write, 0),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": completion,
    }


# --- requests: OpenAI chat → Anthropic messages -----------------------------------------------------------


def _openai_part_to_block(part: dict, param: str) -> dict | None:
    kind = part.get("type")
    if kind == "text":
        block = {"type": "text", "text": part.get("text") or ""}
    elif kind == "image_url":
        image_url = part.get("image_url")
        url = image_url if isinstance(image_url, str) else (image_url or {}).get("url") or ""
        url = url.strip()
        source = _data_url_to_source(url, param) if url.startswith("data:") else {"type": "url", "url": url}
        block = {"type": "image", "source": source}
    else:
        raise InvalidRequest(
            f"Content parts of type `{kind}` can't be sent to this model.", extra={"param": param}
        )
    if isinstance(part.get("cache_control"), dict):
        block["cache_control"] = part["cache_control"]
    return block


def _openai_content_to_blocks(content, param: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content):
        block = _openai_part_to_block(part, f"{param}.content[{j}]")
        if block is not None and not (
            block["type"] == "text" and not block["text"] and "cache_control" not in block
        ):
            blocks.append(block)
    return blocks


def _tool_arguments(arguments, param: str) -> dict:
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            "Tool call `arguments` must be a JSON object encoded as a string.", extra={"param": param}
        ) from None
    if not isinstance(value, dict):
        raise InvalidRequest("Tool call `arguments` must encode a JSON object.", extra={"param": param})
    return value


def _openai_tool_choice(choice, parallel: bool | None) -> dict | None:
    out: dict | None
    if choice is None:
        out = None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        out = {"type": "none"}
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        out = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise InvalidRequest("Unsupported `tool_choice`.", extra={"param": "tool_choice"})
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _json_instruction(response_format: dict | None) -> str | None:
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_INSTRUCTION
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return JSON_INSTRUCTION + " It must match this JSON schema: " + _compact(schema or {})
    return None


def openai_to_anthropic_request(body: dict, *, model: str, max_tokens: int) -> dict:
    """An OpenAI chat-completions body → an Anthropic messages body for ``model``.

    ``max_tokens`` is required by Anthropic; the relay passes what it held for (the
    caller's ``max_tokens``/``max_completion_tokens``, else the model's maximum output,
    lowered to what the balance covers).
    """
    if (body.get("n") or 1) != 1:
        raise InvalidRequest(
            "This model returns one choice per request: `n` must be 1.", extra={"param": "n"}
        )
    system: list[dict] = []
    messages: list[dict] = []

    def add(role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for i, message in enumerate(body.get("messages") or ()):
        param = f"messages[{i}]"
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend(b for b in _openai_content_to_blocks(content, param) if b["type"] == "text")
        elif role == "user":
            add("user", _openai_content_to_blocks(content, param))
        elif role == "assistant":
            blocks = _openai_content_to_blocks(content, param)
            for k, call in enumerate(message.get("tool_calls") or ()):
                fn = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id") or f"toolu_{secrets.token_hex(8)}",
                        "name": fn.get("name") or "",
                        "input": _tool_arguments(
                            fn.get("arguments"), f"{param}.tool_calls[{k}].function.arguments"
                        ),
                    }
                )
            add("assistant", blocks)
        elif role == "tool":
            result: dict = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or ""}
            if isinstance(content, list):
                result["content"] = _openai_content_to_blocks(content, param)
            else:
                result["content"] = content or ""
            add("user", [result])
        else:
            raise InvalidRequest(
                f"Messages with role `{role}` can't be sent to this model.", extra={"param": param}
            )

    instruction = _json_instruction(body.get("response_format"))
    if instruction:
        system.append({"type": "text", "text": instruction})
    out: dict = {"model": model, "max_tokens": max_tokens, "messages": messages}
    if system:
        if len(system) == 1 and "cache_control" not in system[0]:
            out["system"] = system[0]["text"]
        else:
            out["system"] = system
    tools = body.get("tools")
    if tools:
        converted = []
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or tool.get("type", "function") != "function":
                raise InvalidRequest(
                    "Only function tools can be sent to this model.", extra={"param": f"tools[{k}]"}
                )
            fn = tool.get("function") or {}
            item = {
                "name": fn.get("name"),
                "input_schema": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            if fn.get("description"):
                item["description"] = fn["description"]
            if isinstance(tool.get("cache_control"), dict):
                item["cache_control"] = tool["cache_control"]
            converted.append(item)
        out["tools"] = converted
    choice = _openai_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and (tools or choice.get("type") == "none"):
        out["tool_choice"] = choice
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("temperature"), int | float):
        out["temperature"] = min(float(body["temperature"]), 1.0)  # OpenAI 0–2, Anthropic 0–1
    if isinstance(body.get("top_p"), int | float):
        out["top_p"] = body["top_p"]
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("stream"):
        out["stream"] = True
    return out


# --- requests: Anthropic messages → OpenAI chat -----------------------------------------------------------


def _anthropic_source_to_url(source: dict) -> str:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    return source.get("url") or ""


def _anthropic_blocks_to_parts(blocks, param: str, keep_cache_control: bool) -> list[dict]:
    if isinstance(blocks, str):
        return [{"type": "text", "text": blocks}]
    parts = []
    for j, block in enumerate(blocks or ()):
        kind = block.get("type")
        if kind == "text":
            part = {"type": "text", "text": block.get("text") or ""}
        elif kind == "image":
            part = {
                "type": "image_url",
                "image_url": {"url": _anthropic_source_to_url(block.get("source") or {})},
            }
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise InvalidRequest(
                f"Content blocks of type `{kind}` can't be sent to this model.",
                extra={"param": f"{param}[{j}]"},
            )
        if keep_cache_control and isinstance(block.get("cache_control"), dict):
            part["cache_control"] = block["cache_control"]
        parts.append(part)
    return parts


def _parts_content(parts: list[dict]):
    """Plain string content where the parts are only unmarked text (the common shape)."""
    if all(p["type"] == "text" and "cache_control" not in p for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def anthropic_to_openai_request(body: dict, *, model: str, keep_cache_control: bool = False) -> dict:
    """An Anthropic messages body → an OpenAI chat-completions body for ``model``.

    ``keep_cache_control`` keeps ``cache_control`` markers on text parts (for OpenAI-format
    vendors that read them, e.g. Qwen); OpenAI itself caches automatically.
    """
    messages: list[dict] = []
    system = body.get("system")
    if system:
        parts = _anthropic_blocks_to_parts(system, "system", keep_cache_control)
        messages.append({"role": "system", "content": _parts_content(parts)})
    for i, message in enumerate(body.get("messages") or ()):
        param = f"messages.{i}.content"
        role = message.get("role")
        content = message.get("content")
        if role == "assistant":
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            text = "".join(b.get("text") or "" for b in blocks if b.get("type") == "text")
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {"name": b.get("name"), "arguments": _compact(b.get("input") or {})},
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            out_msg: dict = {"role": "assistant", "content": text or None}
            if calls:
                out_msg["tool_calls"] = calls
            messages.append(out_msg)
            continue
        if isinstance(content, str):
            messages.append({"role": "user", "content": content})
            continue
        rest: list[dict] = []
        for j, block in enumerate(content or ()):
            if block.get("type") == "tool_result":
                inner = block.get("content")
                inner_parts = (
                    _anthropic_blocks_to_parts(inner, f"{param}[{j}].content", False) if inner else []
                )
                text = "".join(p["text"] for p in inner_parts if p["type"] == "text")
                if block.get("is_error"):
                    text = "Error: " + text
                messages.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
                # Images inside a tool result can only travel in a user message.
                rest.extend(p for p in inner_parts if p["type"] == "image_url")
            else:
                rest.extend(_anthropic_blocks_to_parts([block], f"{param}[{j}]", keep_cache_control))
        if rest:
            messages.append({"role": "user", "content": _parts_content(rest)})
    out: dict = {"model": model, "messages": messages, "max_tokens": body.get("max_tokens")}
    tools = body.get("tools")
    if tools:
        converted = []
        for k, tool in enumerate(tools):
            if not isinstance(tool, dict) or "input_schema" not in tool:
                raise InvalidRequest(
                    "Only custom tools (with `input_schema`) can be sent to this model.",
                    extra={"param": f"tools.{k}"},
                )
            fn = {"name": tool.get("name"), "parameters": tool["input_schema"]}
            if tool.get("description"):
                fn["description"] = tool["description"]
            converted.append({"type": "function", "function": fn})
        out["tools"] = converted
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "auto":
            out["tool_choice"] = "auto"
        elif kind == "any":
            out["tool_choice"] = "required"
        elif kind == "none":
            out["tool_choice"] = "none"
        elif kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
        if choice.get("disable_parallel_tool_use") and tools:
            out["parallel_tool_calls"] = False
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    for name in ("temperature", "top_p"):
        if isinstance(body.get(name), int | float):
            out[name] = body[name]
    user = (body.get("metadata") or {}).get("user_id") if isinstance(body.get("metadata"), dict) else None
    if user:
        out["user"] = user
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --- responses (JSON) ------------------------------------------------------------------------------------


def anthropic_to_openai_response(message: dict) -> dict:
    """An Anthropic ``message`` → an OpenAI ``chat.completion``."""
    text = ""
    calls = []
    for block in message.get("content") or ():
        if block.get("type") == "text":
            text += block.get("text") or ""
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": _compact(block.get("input") or {})},
                }
            )
    out_message: dict = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        out_message["tool_calls"] = calls
    out = {
        "id": "chatcmpl-" + str(message.get("id") or secrets.token_hex(12)),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [
            {
                "index": 0,
                "message": out_message,
                "logprobs": None,
                "finish_reason": STOP_TO_FINISH.get(message.get("stop_reason"), "stop"),
            }
        ],
    }
    usage = anthropic_usage_to_openai(message.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


def openai_to_anthropic_response(completion: dict) -> dict:
    """An OpenAI ``chat.completion`` → an Anthropic ``message``."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict] = []
    text = _text_of(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        try:
            arguments = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {"_raw_arguments": fn.get("arguments")}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": arguments})
    out = {
        "id": "msg_" + str(completion.get("id") or secrets.token_hex(12)),
        "type": "message",
        "role": "assistant",
        "model": completion.get("model"),
        "content": content,
        "stop_reason": FINISH_TO_STOP.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
    }
    usage = openai_usage_to_anthropic(completion.get("usage"))
    if usage is not None:
        out["usage"] = usage
    return out


# --- streams --------------------------------------------------------------------------------------------


class AnthropicToOpenAIStream:
    """Anthropic SSE events → OpenAI ``chat.completion.chunk`` SSE bytes.

    Role chunk on ``message_start``; content / tool-call argument deltas as they come
    (tool calls numbered from 0 with their id and name in the first chunk); on
    ``message_stop`` the finish chunk, the usage chunk when the caller asked for
    ``stream_options.include_usage``, and ``[DONE]``.
    """

    def __init__(self, *, include_usage: bool, model: str | None = None):
        self.include_usage = include_usage
        self.model = model
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.usage: dict = {}
        self.stop_reason: str | None = None
        self.tool_index: dict[int, int] = {}  # Anthropic block index → OpenAI tool-call index

    def _chunk(self, delta: dict, finish_reason: str | None = None) -> bytes:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if self.include_usage:
            data["usage"] = None
        return _sse(data)

    def feed(self, event: dict) -> list[bytes]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model") or self.model
            if message.get("id"):
                self.id = "chatcmpl-" + str(message["id"])
            self.usage.update({k: v for k, v in (message.get("usage") or {}).items() if v is not None})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[event.get("index", 0)] = index
                call = {
                    "index": index,
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [self._chunk({"content": delta["text"]})]
            if delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                index = self.tool_index.get(event.get("index", 0), 0)
                call = {"index": index, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            out = [self._chunk({}, STOP_TO_FINISH.get(self.stop_reason, "stop"))]
            if self.include_usage:
                out.append(
                    _sse(
                        {
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": anthropic_usage_to_openai(self.usage),
                        }
                    )
                )
            out.append(b"data: [DONE]\n\n")
            return out
        return []  # ping, unknown events


class OpenAIToAnthropicStream:
    """OpenAI ``chat.completion.chunk`` events → Anthropic SSE event bytes.

    ``message_start`` on the first chunk (usage placeholders: OpenAI reports usage only at
    the end, so the full usage — input, cache and output — travels in ``message_delta``,
    which the Anthropic SDK reads as cumulative totals), text and tool-use blocks with
    ``text_delta`` / ``input_json_delta``, ``content_block_stop`` when a block ends, and
    ``message_delta`` + ``message_stop`` at ``[DONE]`` (usage may arrive on the finishing
    chunk — Gemini — or on a separate usage chunk).
    """

    def __init__(self, *, model: str | None = None):
        self.model = model
        self.started = False
        self.finished = False
        self.block: int = -1  # index of the open block, -1 = none
        self.block_kind: str | None = None
        self.blocks = 0
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool-call index → block index
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def _start(self, chunk: dict) -> list[bytes]:
        self.started = True
        self.model = chunk.get("model") or self.model
        message = {
            "id": "msg_" + str(chunk.get("id") or secrets.token_hex(12)),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        return [_event("message_start", {"type": "message_start", "message": message})]

    def _close(self) -> list[bytes]:
        if self.block < 0:
            return []
        index, self.block, self.block_kind = self.block, -1, None
        return [_event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open(self, kind: str, content_block: dict) -> list[bytes]:
        out = self._close()
        self.block, self.block_kind = self.blocks, kind
        self.blocks += 1
        out.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": self.block, "content_block": content_block},
            )
        )
        return out

    def _delta(self, index: int, delta: dict) -> bytes:
        return _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def feed(self, chunk: dict) -> list[bytes]:
        out: list[bytes] = [] if self.started else self._start(chunk)
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                if self.block_kind != "text":
                    out.extend(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta(self.block, {"type": "text_delta", "text": text}))
            for call in delta.get("tool_calls") or ():
                fn = call.get("function") or {}
                index = call.get("index", 0)
                if index not in self.tool_blocks:
                    out.extend(
                        self._open(
                            "tool_use",
                            {
                                "type": "tool_use",
                                "id": call.get("id") or f"toolu_{secrets.token_hex(8)}",
                                "name": fn.get("name") or "",
                                "input": {},
                            },
                        )
                    )
                    self.tool_blocks[index] = self.block
                if fn.get("arguments"):
                    block = self.tool_blocks[index]
                    out.append(
                        self._delta(block, {"type": "input_json_delta", "partial_json": fn["arguments"]})
                    )
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                out.extend(self._close())
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        return out

    def done(self) -> list[bytes]:
        """At ``data: [DONE]``: close the message."""
        if self.finished:
            return []
        self.finished = True
        out = [] if self.started else self._start({})
        out.extend(self._close())
        usage = openai_usage_to_anthropic(self.usage) or {"output_tokens": 0}
        out.append(
            _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": FINISH_TO_STOP.get(self.finish_reason, "end_turn"),
                        "stop_sequence": None,
                    },
                    "usage": usage,
                },
            )
        )
        out.append(_event("message_stop", {"type": "message_stop"}))
        return out
