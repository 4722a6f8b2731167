"""Per-request controls: ``[[sim key=value …]]`` directives, ``sim-…`` API keys, ``x-sim`` header."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

DIRECTIVE_RE = re.compile(r"\[\[sim((?:\s+[^\]\s]+)*)\s*\]\]")

MAX_LATENCY_MS = 600_000
MAX_TIMEOUT_S = 600.0
MAX_CHUNKS = 100_000
MAX_TOKENS = 1_000_000

NAMED_FAULTS = {
    "timeout",
    "malformed_json",
    "malformed_sse",
    "disconnect_mid_stream",
    "error_mid_stream",
}
USAGE_MODES = {"normal", "missing", "zero", "negative"}
ALIASES = {
    "latency": "latency_ms",
    "delay": "chunk_delay_ms",
    "delay_ms": "chunk_delay_ms",
    "chunk_delay": "chunk_delay_ms",
}


class ControlError(ValueError):
    """An invalid directive: the simulator answers 400 (so a typo never passes silently)."""


@dataclass
class Controls:
    latency_ms: int = 0
    chunk_delay_ms: int = 0
    chunks: int | None = None
    tokens: int | None = None
    fault: str | None = None
    fault_after: int | None = None
    retry_after: int = 1
    timeout_s: float = 120.0
    usage: str = "normal"
    echo: bool = False
    reasoning: int = 0

    def as_dict(self) -> dict[str, Any]:
        defaults = Controls()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(defaults, f.name)
        }

    def set(self, name: str, value: str, origin: str) -> None:
        name = ALIASES.get(name, name)
        try:
            if name in ("latency_ms", "chunk_delay_ms"):
                setattr(self, name, _bounded_int(value, 0, MAX_LATENCY_MS))
            elif name == "chunks":
                self.chunks = _bounded_int(value, 1, MAX_CHUNKS)
            elif name == "tokens":
                self.tokens = _bounded_int(value, 0, MAX_TOKENS)
            elif name in ("fault_after", "reasoning"):
                setattr(self, name, _bounded_int(value, 0, MAX_TOKENS))
            elif name == "retry_after":
                self.retry_after = _bounded_int(value, 0, 86_400)
            elif name == "timeout_s":
                self.timeout_s = min(max(float(value), 0.0), MAX_TIMEOUT_S)
            elif name == "fault":
                self.fault = _fault(value)
            elif name == "usage":
                if value not in USAGE_MODES:
                    raise ValueError(value)
                self.usage = value
            elif name == "echo":
                self.echo = value.lower() in ("1", "true", "yes", "on")
            else:
                raise ControlError(f"unknown simulator control {name!r} in {origin}")
        except ControlError:
            raise
        except (TypeError, ValueError) as exc:
            raise ControlError(f"invalid value {value!r} for simulator control {name!r} in {origin}") from exc


def _bounded_int(value: str, low: int, high: int) -> int:
    return min(max(int(value), low), high)


def _fault(value: str) -> str | None:
    if value in ("none", "", "0"):
        return None
    if value in NAMED_FAULTS:
        return value
    status = int(value)
    if not 400 <= status <= 599:
        raise ValueError(value)
    return str(status)


def parse_pairs(text: str, controls: Controls, origin: str) -> None:
    """``key=value key=value`` (the inside of a directive, or the x-sim header)."""
    for item in text.replace(",", " ").split():
        name, sep, value = item.partition("=")
        if not sep:
            raise ControlError(f"expected key=value, got {item!r} in {origin}")
        controls.set(name.strip().lower(), value.strip(), origin)


def apply_directives(text: str, controls: Controls) -> bool:
    """Apply every ``[[sim …]]`` directive found in ``text``; True if there was one."""
    if "[[sim" not in text:
        return False
    found = False
    for match in DIRECTIVE_RE.finditer(text):
        parse_pairs(match.group(1), controls, "[[sim]] directive")
        found = True
    if not found:
        raise ControlError("malformed [[sim …]] directive: expected [[sim key=value …]]")
    return True


KEY_NAMES = {
    "fault",
    "latency",
    "latency_ms",
    "delay",
    "chunk_delay_ms",
    "chunks",
    "tokens",
    "usage",
    "retry_after",
    "fault_after",
    "timeout_s",
    "reasoning",
}


def apply_key(key: str, controls: Controls) -> None:
    """``sim-<name>-<value>[-<name>-<value>…]``; parsing stops at the first unknown name,
    so any suffix may follow (``sim-fault-500-channel1``)."""
    if not key.startswith("sim-"):
        return
    parts = key[4:].split("-")
    i = 0
    while i + 1 < len(parts) and parts[i] in KEY_NAMES:
        controls.set(parts[i], parts[i + 1], "API key")
        i += 2


def iter_strings(value: Any):
    """Every string inside a JSON-ish value (used to find directives in prompts/inputs)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from iter_strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_strings(item)
