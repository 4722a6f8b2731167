"""Render bench/run_all.py's results as the ``gateway`` section of docs/benchmarks.md."""

from __future__ import annotations

import statistics


def _ms(us: float) -> str:
    return f"{us / 1e3:.2f} ms"


def _med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _verdict(ok: bool, text: str) -> str:
    return f"**met** — {text}" if ok else f"**missed** — {text}"


def render(res: dict, args) -> str:
    v = res.get("versions", {})
    out = [
        "## Gateway: overhead, throughput, streams, ledger (A upstream · B Modelgate · C LiteLLM)",
        "",
        "`make bench` → `.venv/bin/python bench/run_all.py` (helpers: `bench/gw_helpers.py`, `bench/streams.py`, "
        "`bench/batch.py`, `bench/writeup.py`). Raw figures: `bench/results.json`; py-spy flame graph: "
        "`bench/profile.svg` (worker 1), collapsed stacks `bench/profile.txt` (worker 2).",
        "",
        f"**Machine**: {res.get('cores')} cores ({v.get('cpu', '?')}), kernel {v.get('kernel', '?')}. "
        f"**Versions**: {v.get('nginx', '?')}; {v.get('wrk', '?')}; PostgreSQL {v.get('postgres', '?')}; "
        f"Redis {v.get('redis', '?')}; Python {v.get('python', '?')}; Django/uvicorn {v.get('django/uvicorn', '?')}; "
        f"LiteLLM {v.get('litellm', '?') or 'n/a'}.",
        "",
        "**Setup** (all on 127.0.0.1, all sharing the same 2 cores with the load tool):",
        "",
        "* **Upstream**: nginx (2 workers) answering `POST /v1/chat/completions` with a fixed `chat.completion` "
        "JSON with usage (`return 200 '…'`, `default_type application/json`, access log off).",
        "* **A** — wrk → nginx directly.",
        "* **B** — wrk → Modelgate: `uvicorn config.asgi:application --workers 2 --no-access-log` (uvloop + "
        "httptools), PostgreSQL (database `bench_modelgate`, dropped, created and migrated by the script), "
        "Redis db 14 (flushed; cache, rate limits and Celery broker), billing and usage records on (hold + "
        "settlement + `UsageRecord` per request), one org with ample credit, one key, channel `bench-nginx` "
        "(openai, `gpt-4o-mini` → nginx `/v1`). The shipped `config.settings.production`, unchanged "
        "(`DB_THREADS=2` database threads per worker, `CONN_MAX_AGE=60`, health checks on).",
        "* **C** — LiteLLM proxy in its own venv (`bench/.venv-litellm`), `litellm --config … --num_workers 2`, "
        "model `gpt-4o-mini` → `openai/gpt-4o-mini` at nginx `/v1`, a master key, **no database: no spend "
        "tracking, no key/budget lookups** (its database mode needs a Prisma download that is not reachable here).",
        f"* Load: `wrk -t1 -c1 -d{args.c1_seconds}s --latency` (unloaded) and `wrk -t2 -c64|-c256 -d{args.load_seconds}s --latency` with a Lua "
        "script setting the POST body "
        '(`{"model":"gpt-4o-mini","messages":[…"Say hi"],"max_tokens":16}`) and the `Authorization` '
        f"header; targets interleaved A, B, C in each of {args.rounds} rounds; medians of the rounds shown.",
        "",
    ]
    cont = res.get("contention") or []
    if cont:
        out += [
            "**Shared machine**: other sessions' processes (test suites) ran on the same 2 cores during this "
            "run, so every figure below is pessimistic and noisier than on an idle machine. Load average "
            "(1/5/15 min) and the busiest processes at each phase:",
            "",
        ]
        for c in cont:
            la = "/".join(f"{x:.1f}" for x in c["loadavg"])
            busy = "; ".join(" ".join(t.split()[1:2] + t.split()[3:5])[:60] for t in c["top"][:4])
            out.append(f"* {c['phase']}: load {la}; top: `{busy}`")
        out.append("")
    if res.get("error"):
        out += [
            "**The run stopped with an error** (figures below are what completed):",
            "",
            "```",
            res["error"],
            "```",
            "",
        ]
    blocked = res.get("blocked") or {}
    if blocked:
        out += ["**Blocked / failed**:", ""]
        for k, msg in blocked.items():
            out.append(f"* {k}: `{str(msg)[:600]}`")
        out.append("")

    load = res.get("load")
    if load:
        out += ["### Added latency at concurrency 1 (`-c1`, unloaded)", ""]
        out += [
            "| target | req/s | p50 | p99 | added p50 (vs A) | added p99 (vs A) | errors |",
            "|---|---|---|---|---|---|---|",
        ]
        a50, a99 = _med(load["A/c1"], "p50"), _med(load["A/c1"], "p99")
        for t in ("A", "B", "C"):
            rows = load.get(f"{t}/c1")
            if not rows:
                continue
            p50, p99 = _med(rows, "p50"), _med(rows, "p99")
            add = "—" if t == "A" else _ms(p50 - a50)
            add99 = "—" if t == "A" else _ms(p99 - a99)
            errs = sum(r["errors"] for r in rows)
            out.append(
                f"| {t} | {_med(rows, 'rps'):.0f} | {_ms(p50)} | {_ms(p99)} | {add} | {add99} | {errs} |"
            )
        out += [
            "",
            "Per round (p50): "
            + "; ".join(
                f"{t} " + ", ".join(_ms(r["p50"]) for r in load.get(f"{t}/c1", []))
                for t in ("A", "B", "C")
                if f"{t}/c1" in load
            )
            + ".",
            "",
        ]
        for conns in (64, 256):
            out += [f"### Saturated: `-c{conns}`", ""]
            out += ["| target | req/s | p50 | p99 | non-2xx / socket errors |", "|---|---|---|---|---|"]
            for t in ("A", "B", "C"):
                rows = load.get(f"{t}/c{conns}")
                if rows:
                    errs = sum(r["errors"] for r in rows)
                    out.append(
                        f"| {t} | {_med(rows, 'rps'):.0f} | {_ms(_med(rows, 'p50'))} | {_ms(_med(rows, 'p99'))} | "
                        f"{errs} of {sum(r['requests'] for r in rows)} |"
                    )
            out.append("")
        out += [
            f"PostgreSQL `too many clients` errors in the gateway's log during the whole run: "
            f"{res.get('too_many_clients', 0)}.",
            "",
        ]
        paced = res.get("paced")
        if paced:
            out += [
                "### Paced load below saturation (approximation of open loop)",
                "",
                f"wrk's `delay()` hook, 32 connections, {paced['delay_ms']:.0f} ms pause after each response "
                f"(aimed at ~{paced['target_rps']:.0f} req/s, half of B's `-c64` rate). This is still closed loop "
                "(a slow response delays the next request, so p99 is understated — coordinated omission); "
                "wrk2, which does true constant-rate load, is not in Debian.",
                "",
                "| target | req/s | p50 | p99 | added p99 vs A |",
                "|---|---|---|---|---|",
            ]
            for t in ("A", "B", "C"):
                w = paced.get(t)
                if w:
                    add = "—" if t == "A" else _ms(w["p99"] - paced["A"]["p99"])
                    out.append(f"| {t} | {w['rps']:.0f} | {_ms(w['p50'])} | {_ms(w['p99'])} | {add} |")
            out.append("")
        lu = res.get("load_usage", {}).get("rows")
        if lu:
            out += [
                "Usage records written during the load phase (B): "
                + ", ".join(f"{r['model']} {r['status']} ×{r['n']}" for r in lu)
                + ".",
                "",
            ]

    t = res.get("ttft")
    if t:
        d, g = t["direct"], t["gateway"]
        out += [
            "### Streaming: time to first SSE event",
            "",
            "`bench/streams.py ttft`: 200 sequential streamed requests each, alternating, to the simulator "
            "directly and through Modelgate (channel `bench-sim`, `gpt-4o`, `[[sim tokens=16 chunks=4]]`), "
            "one httpx keep-alive client; time from sending to the first `data:` line.",
            "",
            "| path | p50 | p99 | mean |",
            "|---|---|---|---|",
            f"| simulator direct | {d['p50_ms']:.2f} ms | {d['p99_ms']:.2f} ms | {d['mean_ms']:.2f} ms |",
            f"| through Modelgate | {g['p50_ms']:.2f} ms | {g['p99_ms']:.2f} ms | {g['mean_ms']:.2f} ms |",
            f"| **overhead** | {g['p50_ms'] - d['p50_ms']:.2f} ms | {g['p99_ms'] - d['p99_ms']:.2f} ms | "
            f"{g['mean_ms'] - d['mean_ms']:.2f} ms |",
            "",
        ]
    streams = res.get("streams")
    if streams:
        out += [
            "### Concurrent in-flight streams",
            "",
            f"`bench/streams.py hold`: N streams opened over max(10 s, N/40 s) through Modelgate, each "
            f"`[[sim chunks=K delay=2000]]` (≈{args.stream_seconds} s long), one asyncio httpx client; RSS of the two "
            "uvicorn workers sampled every 0.5 s (sum). Billing checked afterwards: usage records for the "
            "streams' model since the start, and `manage.py billing_audit`. Stops at the first N that fails.",
            "",
            "| N | completed | errors | peak open | billed (usage records) | RSS before | peak RSS (2 workers) | audit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in streams:
            out.append(
                f"| {s['n']} | {s['completed']} | {s['errors']} | {s['peak_open']} | {s['billed']} | "
                f"{s['rss_base_kib'] / 1024:.0f} MiB | {s['rss_peak_kib'] / 1024:.0f} MiB | {s['audit']} |"
            )
        for s in streams:
            if s.get("error_kinds"):
                out.append(f"\nN={s['n']} errors: `{s['error_kinds']}`")
        out.append("")
    led = res.get("ledger")
    if led:
        r = led["rounds"]
        ex = led["exact"]
        out += [
            "### Hot-account ledger rate (PostgreSQL)",
            "",
            f"`bench/gw_helpers.py ledger`: {r[0]['procs']} processes (multiprocessing, spawn), each looping "
            "`billing.services.hold_place` + `hold_settle` (1,000 units each) against ONE organization for 8 s; "
            "the gateway is stopped first. Then the overdraft check: a fresh org funded with exactly "
            f"3,000 charges, the same {ex['procs']} processes until refused.",
            "",
            "| run | settled | refused | elapsed | settled/s | balance after | held after |",
            "|---|---|---|---|---|---|---|",
        ]
        for i, x in enumerate(r, 1):
            out.append(
                f"| round {i} | {x['settled']} | {x['refused']} | {x['elapsed_s']:.1f} s | {x['rate']:.0f} | "
                f"{x['balance_units']} | {x['held_units']} |"
            )
        out.append(
            f"| exact-funding | {ex['settled']} | {ex['refused']} | {ex['elapsed_s']:.1f} s | {ex['rate']:.0f} | "
            f"{ex['balance_units']} | {ex['held_units']} |"
        )
        out += ["", f"Audit after the ledger runs: {led['audit']}", ""]
    out += ["### Batch lines/s per worker", ""]
    bt = res.get("batch")
    if bt:
        out += [
            f"`bench/batch.py`: a {bt['n']}-line JSONL uploaded with the openai SDK (`files.create`, "
            "`batches.create`, polled every 0.1 s), each line a `gpt-4o-mini` chat completion against the "
            f"fixed upstream, run by {bt['worker']} (PostgreSQL + Redis broker, while the gateway B stays up).",
            "",
            "| lines | status | completed | failed | output lines | validation | run | lines/s |",
            "|---|---|---|---|---|---|---|---|",
            f"| {bt['n']} | {bt['status']} | {bt['completed']} | {bt['failed']} | {bt['output_lines']} | "
            f"{bt['validate_s']:.1f} s | {bt['run_s']:.1f} s | {bt['lines_per_s']:.0f} |",
            "",
        ]
    else:
        out += ["Not measured in this run.", ""]
    prof = res.get("profile")
    if prof and "self" in prof:
        out += [
            "### Profile of B's hot path (py-spy)",
            "",
            f"`py-spy record -d 15 -r 200 --pid <worker 1> -o bench/profile.svg` (wall clock, non-idle threads) "
            f"and `py-spy record --gil -f raw …` on worker 2 (only the thread holding the GIL: where the CPU "
            f"goes) while `wrk -c64` runs ({prof['wrk']['rps']:.0f} req/s during the profile); "
            f"{prof['samples']} GIL samples of worker 2. Top frames by own time, and by inclusive time:",
            "",
            "| own % | frame |",
            "|---|---|",
        ]
        out += [f"| {p} | `{f[:140]}` |" for f, p in prof["self"][:12]]
        out += ["", "| inclusive % | frame |", "|---|---|"]
        out += [f"| {p} | `{f[:140]}` |" for f, p in prof["inclusive"][:20]]
        out += ["", "Project frames (inclusive %):", "", "| inclusive % | frame |", "|---|---|"]
        out += [f"| {p} | `{f[:140]}` |" for f, p in prof.get("project", [])[:20]]
        out.append("")
    elif prof:
        out += ["### Profile", "", f"py-spy failed: `{prof.get('error')}`", ""]
    out += targets(res)
    return "\n".join(out)


def targets(res: dict) -> list[str]:
    load = res.get("load") or {}
    out = ["### Targets from issue 11", "", "| target | measured | verdict |", "|---|---|---|"]
    if "A/c1" in load and "B/c1" in load:
        a50, a99 = _med(load["A/c1"], "p50"), _med(load["A/c1"], "p99")
        b50, b99 = _med(load["B/c1"], "p50") - a50, _med(load["B/c1"], "p99") - a99
        out.append(
            f"| added p50 ≤ 2 ms at c1 | {_ms(b50)} | {_verdict(b50 <= 2000, f'{b50 / 2000:.1f}× the target')} |"
        )
        out.append(
            f"| added p99 ≤ 10 ms at c1 | {_ms(b99)} | {_verdict(b99 <= 10000, f'{b99 / 10000:.1f}× the target')} |"
        )
        nagle = 38000 <= _med(load["B/c1"], "p50") <= 48000
        out.append(
            f"| no 40 ms Nagle/delayed-ACK stall at c1 | B p50 {_ms(_med(load['B/c1'], 'p50'))} | "
            + (
                "**stall suspected** (p50 in 38–48 ms)"
                if nagle
                else "not seen (p50 is not clustered at ~40 ms)"
            )
            + " |"
        )
    if "B/c64" in load and "C/c64" in load:
        b, c = _med(load["B/c64"], "rps"), _med(load["C/c64"], "rps")
        out.append(
            f"| ≥ 3× LiteLLM req/s at c64 | B {b:.0f} vs C {c:.0f} req/s = {b / c:.2f}× | {_verdict(b >= 3 * c, f'{b / c / 3:.0%} of the goal')} |"
        )
    elif "B/c64" in load:
        out.append(
            f"| ≥ 3× LiteLLM req/s at c64 | B {_med(load['B/c64'], 'rps'):.0f} req/s, C blocked | not comparable in this run |"
        )
    for s in res.get("streams") or []:
        ok = (
            s["completed"] == s["n"]
            and s["billed"] == s["n"]
            and s["rss_peak_kib"] < 1024 * 1024
            and "OK" in s["audit"]
        )
        out.append(
            f"| ≥ 2,000 streams < 1 GiB, all billed | N={s['n']}: {s['completed']} completed, {s['billed']} billed, "
            f"{s['rss_peak_kib'] / 1024:.0f} MiB | "
            + ("ok at this N" if ok else "**failed at this N**")
            + " |"
        )
    led = res.get("ledger")
    if led:
        rate = statistics.median(x["rate"] for x in led["rounds"])
        ex = led["exact"]
        no_od = ex["balance_units"] >= 0 and ex["held_units"] == 0 and ex["settled"] == 3000
        out.append(
            f"| hot account ≥ 1,000 settled/s | {rate:.0f}/s | {_verdict(rate >= 1000, f'{rate / 1000:.0%} of the goal')} |"
        )
        out.append(
            f"| no overdraft | exact funding: {ex['settled']} settled of 3,000, balance {ex['balance_units']} | "
            + ("**met**" if no_od else "**missed**")
            + " |"
        )
    out.append("")
    return out
