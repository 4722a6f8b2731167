"""Deterministic usage rules of the upstream simulator.

Everything here is pure (no I/O, no global state) so that tests of the gateway can
compute the usage the simulator will report for a request body, and therefore the
exact charge. ``docs/simulator.md`` documents the same rules in prose.

Summary
-------
* text: ``text_tokens(s) = ceil(len(s.encode("utf-8")) / 4)``
* every chat message adds ``MESSAGE_OVERHEAD`` (4) tokens
* tools: ``text_tokens`` of their compact, key-sorted JSON (Anthropic: per tool)
* OpenAI-format images: gpt-4o tile rule; Anthropic-format images: ``ceil(w*h/750)``
* http(s) image URLs (never fetched): fixed counts
* output: the reply text is exactly ``4 * n`` UTF-8 bytes, so ``completion_tokens == n``
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

MESSAGE_OVERHEAD = 4
DEFAULT_OUTPUT_TOKENS = 16

OPENAI_LOW_DETAIL_TOKENS = 85
OPENAI_TILE_TOKENS = 170
OPENAI_URL_IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}
ANTHROPIC_URL_IMAGE_TOKENS = 1600
ANTHROPIC_MAX_LONG_EDGE = 1568
ANTHROPIC_MAX_PIXELS = 1_150_000
OPENAI_IMPLICIT_CACHE_MIN_TOKENS = 1024

# gpt-image-1 output tokens per image (OpenAI's published table); "auto" quality → medium.
GPT_IMAGE_OUTPUT_TOKENS = {
    "low": {"1024x1024": 272, "1024x1536": 408, "1536x1024": 400},
    "medium": {"1024x1024": 1056, "1024x1536": 1584, "1536x1024": 1568},
    "high": {"1024x1024": 4160, "1024x1536": 6240, "1536x1024": 6208},
}

ANTHROPIC_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


class UsageError(ValueError):
    """The request cannot be counted (e.g. an undecodable image): the simulator answers 400."""


# --------------------------------------------------------------------------- text


def text_tokens(text: str) -> int:
    """ceil(len(utf-8 bytes) / 4); 0 for the empty string."""
    return (len(text.encode("utf-8")) + 3) // 4


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys (what tools/tool inputs are counted on)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def json_tokens(value: Any) -> int:
    return (len(canonical_json(value)) + 3) // 4


# --------------------------------------------------------------------------- images


def openai_image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """gpt-4o rule. low → 85. high/auto: fit in 2048×2048, then shortest side → 768
    (only ever scaling down, integer floor arithmetic), 512-px tiles, 85 + 170 × tiles."""
    if detail == "low":
        return OPENAI_LOW_DETAIL_TOKENS
    w, h = int(width), int(height)
    if max(w, h) > 2048:
        m = max(w, h)
        w, h = w * 2048 // m, h * 2048 // m
    if min(w, h) > 768:
        m = min(w, h)
        w, h = w * 768 // m, h * 768 // m
    tiles = math.ceil(max(w, 1) / 512) * math.ceil(max(h, 1) / 512)
    return OPENAI_LOW_DETAIL_TOKENS + OPENAI_TILE_TOKENS * tiles


def anthropic_image_size(width: int, height: int) -> tuple[int, int]:
    """Resize (down only) to long edge ≤ 1568, then to ≤ 1.15 MP; integer floor arithmetic."""
    w, h = int(width), int(height)
    m = max(w, h)
    if m > ANTHROPIC_MAX_LONG_EDGE:
        w, h = w * ANTHROPIC_MAX_LONG_EDGE // m, h * ANTHROPIC_MAX_LONG_EDGE // m
    if w * h > ANTHROPIC_MAX_PIXELS:
        scale = math.sqrt(ANTHROPIC_MAX_PIXELS / (w * h))
        w, h = int(w * scale), int(h * scale)
    return max(w, 1), max(h, 1)


def anthropic_image_tokens(width: int, height: int) -> int:
    """ceil(w × h / 750) after ``anthropic_image_size``."""
    w, h = anthropic_image_size(width, height)
    return (w * h + 749) // 750


def image_info(data: bytes) -> tuple[int, int, str]:
    """(width, height, Pillow format) of encoded image bytes; only the header is parsed."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.width, img.height, img.format or ""
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise UsageError("The image data could not be decoded as an image.") from exc


def _b64decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise UsageError("Invalid base64 image data.") from exc


def decode_data_url(url: str) -> tuple[str, bytes]:
    """``data:<media>;base64,<data>`` → (media type, bytes)."""
    header, sep, payload = url.partition(",")
    if not sep or not header.startswith("data:") or ";base64" not in header:
        raise UsageError("Invalid data URL: expected data:<media type>;base64,<data>.")
    return header[5:].split(";", 1)[0], _b64decode(payload)


def openai_image_part_tokens(image_url: dict | str) -> int:
    """Tokens for an OpenAI ``image_url`` content part (its ``image_url`` object)."""
    if isinstance(image_url, str):
        url, detail = image_url, "auto"
    else:
        url, detail = str(image_url.get("url") or ""), str(image_url.get("detail") or "auto")
    if detail not in ("low", "high", "auto"):
        raise UsageError(f"Invalid image detail {detail!r}: expected low, high or auto.")
    if url.startswith("data:"):
        _media, data = decode_data_url(url)
        w, h, _fmt = image_info(data)
        return openai_image_tokens(w, h, detail)
    if url.startswith(("http://", "https://")):
        return OPENAI_URL_IMAGE_TOKENS[detail]
    raise UsageError("Invalid image URL: expected an http(s) URL or a base64 data URL.")


def anthropic_image_block_tokens(source: dict) -> int:
    """Tokens for an Anthropic image ``source`` (base64 / url / file)."""
    kind = source.get("type")
    if kind == "base64":
        data = _b64decode(str(source.get("data") or ""))
        w, h, fmt = image_info(data)
        media = source.get("media_type")
        if ANTHROPIC_MEDIA_TYPES.get(fmt) != media:
            raise UsageError(f"Image does not match the provided media type {media}")
        return anthropic_image_tokens(w, h)
    if kind in ("url", "file"):
        return ANTHROPIC_URL_IMAGE_TOKENS
    raise UsageError(f"Unsupported image source type {kind!r}.")


# --------------------------------------------------------------------------- prompt counting


@dataclass
class PromptCount:
    """Counted input. ``breakpoints`` are (cumulative tokens, prefix key, ttl) for caching."""

    total: int = 0
    text: int = 0
    image: int = 0
    images: int = 0
    messages: int = 0
    tools: int = 0
    explicit_cache: bool = False
    breakpoints: list[tuple[int, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._hash = hashlib.sha256()

    def seed(self, model: str) -> None:
        self._hash.update(b"model\0" + model.encode())

    def add_text(self, text: str, kind: bytes = b"t") -> None:
        n = text_tokens(text)
        self.total += n
        self.text += n
        self._hash.update(kind + b"\0" + text.encode("utf-8", "surrogatepass") + b"\1")

    def add_fixed(self, n: int, ident: bytes) -> None:
        self.total += n
        self.text += n
        self._hash.update(ident + b"\1")

    def add_image(self, n: int, ident: str) -> None:
        self.total += n
        self.image += n
        self.images += 1
        self._hash.update(b"i\0" + hashlib.sha256(ident.encode()).digest() + b"\1")

    def mark(self, cache_control: Any) -> None:
        ttl = "1h" if isinstance(cache_control, dict) and cache_control.get("ttl") == "1h" else "5m"
        self.breakpoints.append((self.total, self._hash.copy().hexdigest(), ttl))


def _openai_text_of(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return []


def count_openai_prompt(body: dict) -> PromptCount:
    """Input tokens of an OpenAI chat completions request body.

    tools (compact sorted JSON of the whole ``tools`` list) first, then per message
    4 + text parts + image parts + tool calls (name + arguments). Content parts with a
    ``cache_control`` marker (Qwen/Anthropic-style explicit caching) are cache breakpoints;
    without any, an implicit breakpoint sits after the second-to-last message when that
    prefix is ≥ 1024 tokens (OpenAI automatic prefix caching).
    """
    c = PromptCount()
    c.seed(str(body.get("model") or ""))
    tools = body.get("tools")
    if tools:
        c.add_fixed(json_tokens(tools), b"tools\0" + canonical_json(tools))
        c.tools = len(tools)
    messages = body.get("messages") or []
    implicit_at = None
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise UsageError(f"messages[{i}] must be an object.")
        c.messages += 1
        c.add_fixed(MESSAGE_OVERHEAD, b"m\0" + str(msg.get("role")).encode())
        content = msg.get("content")
        if isinstance(content, str):
            c.add_text(content)
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    raise UsageError(f"messages[{i}].content parts must be objects.")
                kind = part.get("type")
                if kind == "text":
                    c.add_text(str(part.get("text") or ""))
                elif kind == "refusal":
                    c.add_text(str(part.get("refusal") or ""))
                elif kind == "image_url":
                    image_url = part.get("image_url") or {}
                    url = image_url if isinstance(image_url, str) else str(image_url.get("url") or "")
                    c.add_image(openai_image_part_tokens(image_url), url)
                if part.get("cache_control"):
                    c.explicit_cache = True
                    c.mark(part.get("cache_control"))
        for call in msg.get("tool_calls") or []:
            fn = call.get("function") or {}
            c.add_text(str(fn.get("name") or ""), b"fn")
            c.add_text(str(fn.get("arguments") or ""), b"args")
        if msg.get("function_call"):
            fn = msg["function_call"]
            c.add_text(str(fn.get("name") or ""), b"fn")
            c.add_text(str(fn.get("arguments") or ""), b"args")
        if i == len(messages) - 2:
            implicit_at = (c.total, c._hash.copy().hexdigest())
    if not c.explicit_cache and implicit_at and implicit_at[0] >= OPENAI_IMPLICIT_CACHE_MIN_TOKENS:
        c.breakpoints.append((implicit_at[0], implicit_at[1], "5m"))
    return c


def _anthropic_block(c: PromptCount, block: Any, where: str) -> None:
    if isinstance(block, str):
        c.add_text(block)
        return
    if not isinstance(block, dict):
        raise UsageError(f"{where} must be an object.")
    kind = block.get("type")
    if kind == "text":
        c.add_text(str(block.get("text") or ""))
    elif kind == "image":
        source = block.get("source") or {}
        ident = str(source.get("data") or source.get("url") or source.get("file_id") or "")
        try:
            c.add_image(anthropic_image_block_tokens(source), ident)
        except UsageError as exc:
            raise UsageError(f"{where}.image.source: {exc}") from exc
    elif kind == "tool_use":
        c.add_text(str(block.get("name") or ""), b"fn")
        c.add_fixed(json_tokens(block.get("input") or {}), b"in\0" + canonical_json(block.get("input") or {}))
    elif kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            for j, sub in enumerate(content):
                _anthropic_block(c, sub, f"{where}.content.{j}")
        elif content is not None:
            c.add_text(str(content))
    elif kind == "thinking":
        c.add_text(str(block.get("thinking") or ""))
    elif kind == "document":
        source = block.get("source") or {}
        if source.get("type") == "text":
            c.add_text(str(source.get("data") or ""))
        else:
            c.add_fixed(ANTHROPIC_URL_IMAGE_TOKENS, b"doc\0" + canonical_json(source)[:256])
    if block.get("cache_control"):
        c.explicit_cache = True
        c.mark(block.get("cache_control"))


def count_anthropic_input(body: dict) -> PromptCount:
    """Input tokens of an Anthropic messages request body (before cache splitting).

    Order (the prompt-cache prefix order): tools (each: compact sorted JSON without its
    ``cache_control``), system (string or text blocks), then per message 4 + blocks
    (text; image; tool_use = name + compact sorted JSON of input; tool_result = its
    content). Every ``cache_control`` marker (and a top-level ``cache_control``, placed
    after the last block) is a cache breakpoint.
    """
    c = PromptCount()
    c.seed(str(body.get("model") or ""))
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict):
            raise UsageError(f"tools.{i} must be an object.")
        bare = {k: v for k, v in tool.items() if k != "cache_control"}
        c.add_fixed(json_tokens(bare), b"tool\0" + canonical_json(bare))
        c.tools += 1
        if tool.get("cache_control"):
            c.explicit_cache = True
            c.mark(tool.get("cache_control"))
    system = body.get("system")
    if isinstance(system, str):
        c.add_text(system, b"sys")
    elif isinstance(system, list):
        for j, block in enumerate(system):
            _anthropic_block(c, block, f"system.{j}")
    for i, msg in enumerate(body.get("messages") or []):
        if not isinstance(msg, dict):
            raise UsageError(f"messages.{i} must be an object.")
        c.messages += 1
        c.add_fixed(MESSAGE_OVERHEAD, b"m\0" + str(msg.get("role")).encode())
        content = msg.get("content")
        if isinstance(content, str):
            c.add_text(content)
        elif isinstance(content, list):
            for j, block in enumerate(content):
                _anthropic_block(c, block, f"messages.{i}.content.{j}")
    if body.get("cache_control"):
        c.explicit_cache = True
        c.mark(body.get("cache_control"))
    return c


# --------------------------------------------------------------------------- prompt cache


@dataclass
class CacheResult:
    read: int = 0
    creation: int = 0
    creation_5m: int = 0
    creation_1h: int = 0


class PromptCache:
    """Per-simulator-instance prompt cache: the first request with a given prefix creates
    it, later ones read it. Breakpoints are nested prefixes; the longest one already seen
    is read, every token after it up to the last breakpoint is written (under the ttl
    of the breakpoint closing each segment), and all breakpoints become "seen"."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self.max_entries = max_entries

    def clear(self) -> None:
        self._seen.clear()

    def apply(self, breakpoints: list[tuple[int, str, str]], *, record: bool = True) -> CacheResult:
        result = CacheResult()
        if not breakpoints:
            return result
        hit = -1
        for i, (_tokens, key, _ttl) in enumerate(breakpoints):
            if key in self._seen:
                hit = i
        result.read = breakpoints[hit][0] if hit >= 0 else 0
        previous = result.read
        for tokens, _key, ttl in breakpoints[hit + 1 :]:
            segment = max(tokens - previous, 0)
            previous = max(tokens, previous)
            if ttl == "1h":
                result.creation_1h += segment
            else:
                result.creation_5m += segment
        result.creation = result.creation_5m + result.creation_1h
        if record:
            for tokens, key, _ttl in breakpoints:
                self._seen[key] = tokens
                self._seen.move_to_end(key)
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
        return result


# --------------------------------------------------------------------------- output


FILLER = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    "incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud "
)


def output_tokens_for(base: str, requested: int | None) -> int:
    """Output length n: the ``tokens`` control if given, else max(16, text_tokens(base))."""
    if requested is not None:
        return max(int(requested), 0)
    return max(DEFAULT_OUTPUT_TOKENS, text_tokens(base))


def fit_text(base: str, n: int) -> str:
    """``base`` truncated/padded (with FILLER) to exactly 4·n UTF-8 bytes → text_tokens == n."""
    size = 4 * n
    raw = base.encode("utf-8")[:size].decode("utf-8", "ignore")
    missing = size - len(raw.encode("utf-8"))
    if missing > 0:
        filler = FILLER * (missing // len(FILLER) + 1)
        raw += filler[:missing]
    return raw


def reply_base(model: str, *, tool_result: str | None = None, echo: str | None = None) -> str:
    if tool_result is not None:
        return f"Simulated reply from {model}: the tool returned: {tool_result}"
    if echo is not None:
        return f"Simulated reply from {model}: you said: {echo}"
    return f"Simulated reply from {model}: "


def json_reply(model: str, n: int, schema: dict | None = None) -> str:
    """JSON-mode content: a JSON value padded with trailing spaces to exactly
    max(4·n, 4·ceil(len/4)) bytes, so completion_tokens == len(content) / 4."""
    if schema is not None:
        value = example_for_schema(schema)
    else:
        value = {"simulated": True, "model": model, "reply": "Simulated reply"}
    raw = orjson.dumps(value).decode()
    size = max(4 * n, (len(raw.encode()) + 3) // 4 * 4)
    return raw + " " * (size - len(raw.encode()))


_PLACE_NAMES = ("location", "city", "place", "town", "region")


def example_for_schema(schema: Any, name: str = "") -> Any:
    """A small deterministic value satisfying a simple JSON schema (tool arguments, json_schema)."""
    if not isinstance(schema, dict):
        return "simulated"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            return example_for_schema(schema[combo][0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: example_for_schema(sub, key) for key, sub in props.items()}
    if kind == "array":
        return [example_for_schema(schema.get("items") or {"type": "string"}, name)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    lowered = name.lower()
    if any(p in lowered for p in _PLACE_NAMES):
        return "Paris"
    return "simulated"


def image_output_tokens(model: str, size: str, quality: str, n: int) -> int:
    """gpt-image-* output tokens: the published per-image table × n (auto → medium / 1024x1024)."""
    q = quality if quality in GPT_IMAGE_OUTPUT_TOKENS else "medium"
    s = size if size in GPT_IMAGE_OUTPUT_TOKENS[q] else "1024x1024"
    return GPT_IMAGE_OUTPUT_TOKENS[q][s] * max(n, 1)
