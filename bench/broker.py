"""Measure the serverless Celery brokers for the embedded default.

For each candidate (kombu's filesystem transport and ``sqla+sqlite``) this starts a real
worker process, then measures the round trip of one task (enqueue → worker → result, p50
and p95 over sequential calls) and the throughput of a burst of tasks. Prints a table
and writes it into docs/benchmarks.md between markers.

    .venv/bin/python bench/broker.py [--burst 300] [--sequential 40]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.report import write_section  # noqa: E402

CANDIDATES = {
    "filesystem://": lambda d: "filesystem://",
    "sqla+sqlite": lambda d: f"sqla+sqlite:///{d}/broker.sqlite3",
}


def measure(name: str, burst: int, sequential: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_RESULT_BACKEND"}
        }
        env |= {
            "MODELGATE_DATA_DIR": data_dir,
            "CELERY_BROKER_URL": CANDIDATES[name](data_dir),
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
        }
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "WARNING",
                "-c",
                "2",
                "-P",
                "prefork",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            code = f"""
import time, statistics, json, django
django.setup()
from config.celery import ping
ping.delay().get(timeout=60)  # warm up: the worker is ready
lat = []
for _ in range({sequential}):
    t = time.perf_counter(); ping.delay().get(timeout=30, interval=0.005); lat.append(time.perf_counter() - t)
t = time.perf_counter()
results = [ping.delay() for _ in range({burst})]
for r in results: r.get(timeout=120, interval=0.005)
burst_s = time.perf_counter() - t
print(json.dumps({{"lat": lat, "burst_s": burst_s}}))
"""
            out = subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
            )
            if out.returncode:
                raise RuntimeError(out.stderr[-2000:])
            import json

            data = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    lat = sorted(data["lat"])
    return {
        "broker": name,
        "p50_ms": statistics.median(lat) * 1000,
        "p95_ms": lat[int(len(lat) * 0.95) - 1] * 1000,
        "burst": burst,
        "tasks_per_s": burst / data["burst_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--burst", type=int, default=300)
    parser.add_argument("--sequential", type=int, default=40)
    args = parser.parse_args()
    rows = [measure(name, args.burst, args.sequential) for name in CANDIDATES]
    lines = [
        "| broker | round trip p50 | round trip p95 | burst | tasks/s |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['broker']}` | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['burst']} | {r['tasks_per_s']:.0f} |"
        )
    table = "\n".join(lines)
    print(table)
    write_section(
        "broker",
        "## Embedded Celery broker\n\n"
        "`.venv/bin/python bench/broker.py` — a real worker (prefork, 2 processes) per candidate, "
        f"results in SQLite via SQLAlchemy; {args.sequential} sequential round trips, then a burst of "
        f"{args.burst} tasks.\n\n" + table + "\n\n"
        "The filesystem transport polls every 0.1 s (`polling_interval` in `CELERY_BROKER_TRANSPORT_OPTIONS`); "
        "kombu's SQLAlchemy transport hands its transport options to `create_engine`, so it keeps its fixed "
        "1 s poll. The burst rate of both is bound by polling with prefetch 1 (`acks_late`), not by disk. "
        "Picked for the embedded default: `filesystem://`.\n",
    )


if __name__ == "__main__":
    main()
