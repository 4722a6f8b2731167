"""Batch lines/s for bench/run_all.py: one Batch API job through the official openai SDK.

batch --gateway http://127.0.0.1:PORT/v1 --key mg-… --n 2000 --model gpt-4o-mini

Uploads an N-line JSONL file (``/v1/files``), creates a batch (``/v1/batches``), polls it every
0.1 s and reports the time from the first line running (``in_progress``) to ``completed``,
as the caller observed it, plus the request counts and the output file's line count.
"""

from __future__ import annotations

import argparse
import io
import json
import time

import openai


def run(gateway: str, key: str, n: int, model: str) -> dict:
    client = openai.OpenAI(api_key=key, base_url=gateway, max_retries=0, timeout=60)
    lines = [
        json.dumps(
            {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": model,
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"Say hi {i}"}],
                },
            }
        )
        for i in range(n)
    ]
    upload = client.files.create(file=("bench.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch")
    created = time.monotonic()
    batch = client.batches.create(
        input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    started = None
    while True:
        batch = client.batches.retrieve(batch.id)
        now = time.monotonic()
        if batch.status == "in_progress" and started is None:
            started = now
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            break
        if now - created > 1800:
            raise RuntimeError(f"batch still {batch.status} after 30 min")
        time.sleep(0.1)
    ended = time.monotonic()
    started = started or created
    output = client.files.content(batch.output_file_id).text if batch.output_file_id else ""
    return {
        "n": n,
        "status": batch.status,
        "completed": batch.request_counts.completed,
        "failed": batch.request_counts.failed,
        "output_lines": len([ln for ln in output.splitlines() if ln.strip()]),
        "validate_s": started - created,
        "run_s": ended - started,
        "lines_per_s": n / max(ended - started, 1e-9),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["batch"])
    p.add_argument("--gateway", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--model", default="gpt-4o-mini")
    a = p.parse_args()
    print("RESULT " + json.dumps(run(a.gateway, a.key, a.n, a.model)))


if __name__ == "__main__":
    main()
