"""Turning an upstream's reported usage into the catalogue's ``Usage``.

Policy for bad upstream usage (documented in the README): when usage is missing, zero
while output was produced, or has a negative count, the gateway charges its own
estimate — the input it estimated for the hold plus the output it relayed — and marks
the record ``usage_source=estimated``. A charge is never negative: no usage ever credits.
"""

from __future__ import annotations

from models_catalog.info import Usage
from models_catalog.pricing import text_tokens_estimate


def _int(value) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _nonneg(*values) -> bool:
    return all(v is not None and v >= 0 for v in values)


def openai_chat_usage(usage: dict | None) -> Usage | None:
    """``usage`` of a chat completion (or the final stream chunk); None when unusable."""
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
    cached = cached or 0
    # Explicit cache markers (Qwen, or a Claude answer translated to this format) also
    # report the tokens written to the cache; they are part of prompt_tokens.
    written = _int(details.get("cache_creation_input_tokens")) if isinstance(details, dict) else 0
    written = written or 0
    if not _nonneg(prompt, completion) or cached < 0 or written < 0 or cached + written > prompt:
        return None
    # Some vendors (Grok) report reasoning tokens outside completion_tokens but inside the total.
    output = completion
    if total is not None and total > prompt + completion:
        output = total - prompt
    return Usage(
        input_tokens=prompt - cached - written,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
    )


def anthropic_usage(start: dict | None, delta: dict | None) -> Usage | None:
    """From ``message_start.message.usage`` and the last ``message_delta.usage`` (or a message's usage)."""
    if not isinstance(start, dict):
        return None
    merged = dict(start)
    if isinstance(delta, dict):
        merged.update({k: v for k, v in delta.items() if v is not None})
    input_tokens = _int(merged.get("input_tokens"))
    output_tokens = _int(merged.get("output_tokens"))
    write = _int(merged.get("cache_creation_input_tokens")) or 0
    read = _int(merged.get("cache_read_input_tokens")) or 0
    if not _nonneg(input_tokens, output_tokens, write, read):
        return None
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_write_tokens=write,
        cached_input_tokens=read,
    )


def openai_chat_produced(body: dict) -> str:
    """The text (and tool-call text) of a chat completion: the output estimate's basis."""
    parts = []
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append((fn.get("name") or "") + (fn.get("arguments") or ""))
    return "".join(p for p in parts if isinstance(p, str))


def anthropic_produced(body: dict) -> str:
    parts = []
    for block in body.get("content") or ():
        if block.get("type") == "text":
            parts.append(block.get("text") or "")
        elif block.get("type") == "tool_use":
            parts.append(str(block.get("name") or "") + str(block.get("input") or ""))
    return "".join(parts)


def openai_embeddings_usage(usage: dict | None) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    if not _nonneg(prompt):
        return None
    return Usage(input_tokens=prompt)


def openai_images_usage(body: dict, *, size: str, quality: str) -> Usage | None:
    """gpt-image-1 reports token usage; DALL·E 3 reports none and is billed per image."""
    images = len(body.get("data") or [])
    usage = body.get("usage")
    if isinstance(usage, dict):
        details = usage.get("input_tokens_details") or {}
        text = _int(details.get("text_tokens")) if isinstance(details, dict) else None
        image = _int(details.get("image_tokens")) if isinstance(details, dict) else None
        input_tokens = _int(usage.get("input_tokens"))
        output_tokens = _int(usage.get("output_tokens"))
        if not _nonneg(input_tokens, output_tokens):
            return None
        if text is None or image is None or text < 0 or image < 0:
            text, image = input_tokens, 0
        return Usage(input_tokens=text, image_input_tokens=image, image_output_tokens=output_tokens)
    if images:
        return Usage(images_generated=images, image_size=size, image_quality=quality)
    return None


def is_empty(usage: Usage) -> bool:
    return not any(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            usage.image_input_tokens,
            usage.image_output_tokens,
            usage.images_generated,
        )
    )


def estimated_usage(*, input_tokens: int, image_tokens: int, produced_text: str) -> Usage:
    """The gateway's own estimate: what it held for input plus the output it relayed."""
    return Usage(
        input_tokens=input_tokens,
        image_input_tokens=image_tokens,
        output_tokens=text_tokens_estimate(produced_text),
    )
