"""Streaming client for bench/run_all.py (project venv, httpx + asyncio; low request rates only).

ttft --direct URL --gateway URL --key K --n 100     time to the first SSE event, alternating targets
hold --gateway URL --key K --n 500 --chunks 30 --delay-ms 2000 --ramp 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import httpx


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


async def _first_event(client: httpx.AsyncClient, url: str, headers: dict, body: dict) -> float:
    t0 = time.perf_counter()
    first = None
    async with client.stream("POST", url, json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if first is None and line.startswith("data: "):
                first = time.perf_counter() - t0
    return first


async def ttft(direct: str, gateway: str, key: str, n: int) -> dict:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "[[sim tokens=16 chunks=4]] hello"}],
    }
    res: dict[str, list[float]] = {"direct": [], "gateway": []}
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(5):  # warm both paths (connections, caches)
            await _first_event(client, direct, {"Authorization": "Bearer sk-sim"}, body)
            await _first_event(client, gateway, {"Authorization": f"Bearer {key}"}, body)
        for _ in range(n):
            res["direct"].append(await _first_event(client, direct, {"Authorization": "Bearer sk-sim"}, body))
            res["gateway"].append(
                await _first_event(client, gateway, {"Authorization": f"Bearer {key}"}, body)
            )
    out = {}
    for k, v in res.items():
        out[k] = {
            "p50_ms": _pct(v, 50) * 1e3,
            "p99_ms": _pct(v, 99) * 1e3,
            "mean_ms": statistics.mean(v) * 1e3,
        }
    return out


async def hold(gateway: str, key: str, n: int, chunks: int, delay_ms: int, ramp: float) -> dict:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": f"[[sim tokens={chunks} chunks={chunks} delay={delay_ms}]] hold"}
        ],
    }
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=0)
    state = {"open": 0, "peak": 0, "done": 0, "errors": 0}
    errors: dict[str, int] = {}

    async def one(i: int, client: httpx.AsyncClient) -> None:
        await asyncio.sleep(ramp * i / n)
        counted = False
        try:
            async with client.stream("POST", gateway, json=body, headers=headers) as r:
                if r.status_code != 200:
                    raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:120]!r}")
                done = False
                async for line in r.aiter_lines():
                    if not counted and line.startswith("data: "):
                        counted = True
                        state["open"] += 1
                        state["peak"] = max(state["peak"], state["open"])
                    if line == "data: [DONE]":
                        done = True
                if not done:
                    raise RuntimeError("stream ended without [DONE]")
                state["done"] += 1
        except Exception as exc:
            state["errors"] += 1
            name = f"{type(exc).__name__}: {str(exc)[:100]}"
            errors[name] = errors.get(name, 0) + 1
        finally:
            if counted:
                state["open"] -= 1

    t0 = time.perf_counter()
    timeout = httpx.Timeout(connect=30, read=60, write=30, pool=60)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        await asyncio.gather(*(one(i, client) for i in range(n)))
    return {
        "n": n,
        "completed": state["done"],
        "errors": state["errors"],
        "peak_open": state["peak"],
        "wall_s": time.perf_counter() - t0,
        "error_kinds": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("ttft")
    t.add_argument("--direct", required=True)
    t.add_argument("--gateway", required=True)
    t.add_argument("--key", required=True)
    t.add_argument("--n", type=int, default=100)
    h = sub.add_parser("hold")
    h.add_argument("--gateway", required=True)
    h.add_argument("--key", required=True)
    h.add_argument("--n", type=int, default=500)
    h.add_argument("--chunks", type=int, default=30)
    h.add_argument("--delay-ms", type=int, default=2000)
    h.add_argument("--ramp", type=float, default=10)
    a = p.parse_args()
    if a.cmd == "ttft":
        out = asyncio.run(ttft(a.direct, a.gateway, a.key, a.n))
    else:
        out = asyncio.run(hold(a.gateway, a.key, a.n, a.chunks, a.delay_ms, a.ramp))
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
