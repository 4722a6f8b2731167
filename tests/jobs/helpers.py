from __future__ import annotations

import json
import time
from fractions import Fraction

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def chat_line(
    i: int, *, model: str = "gpt-4o-mini", text: str | None = None, max_tokens: int = 32, **extra
) -> dict:
    return {
        "custom_id": f"req-{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": text or f"Question number {i}?"}],
        },
        **extra,
    }


def jsonl(lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def wait_batch(client, batch_id: str, timeout: float = 90.0, until=TERMINAL):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in until:
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} still {batch.status} ({batch.request_counts}) after {timeout}s")


def read_jsonl(client, file_id: str) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines() if line.strip()]


def chat_line_cost(usage: dict, price, batch_percent: int, multiplier: Fraction = Fraction(1)) -> int:
    """The catalogue's rule written out independently: ceil(Σ tokens × price / 10⁶ × batch% × plan)."""
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    subtotal = Fraction(
        (usage["prompt_tokens"] - cached) * price.input_per_mtok
        + cached * (price.cached_input_per_mtok or price.input_per_mtok)
        + usage["completion_tokens"] * price.output_per_mtok,
        1_000_000,
    )
    total = subtotal * Fraction(batch_percent, 100) * multiplier
    return -(-total.numerator // total.denominator)
