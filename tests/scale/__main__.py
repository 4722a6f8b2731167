"""`make scale-test`: the multi-node proof, longer variant, with a report in docs/operations.md.

    python -m tests.scale [--short] [--no-netns] [--no-docs]

Services (defaults in brackets): SCALE_DATABASE_URL [postgres://postgres@127.0.0.1:5432/modelgate_scale]
(created and migrated when missing), SCALE_REDIS_URL [redis://127.0.0.1:6379/9] (cache, rate
limits), SCALE_BROKER_URL [redis://127.0.0.1:6379/10] (broker and results). Both Redis databases
are flushed at the start: give it databases nobody else uses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BEGIN, END = "<!-- ops:scale -->", "<!-- /ops:scale -->"


def _prepare(database_url: str, redis_url: str, broker_url: str) -> None:
    import psycopg
    import redis

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    for url in {redis_url, broker_url}:
        redis.Redis.from_url(url).flushdb()
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_RESULT_BACKEND": broker_url,
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _markdown(report: dict, *, sizes, took: float, why_not_netns: str) -> str:
    rpm, holds, batch, kill = report["rpm"], report["holds"], report["batch"], report["kill"]
    mode = report["mode"] + (f" (netns unavailable: {why_not_netns})" if why_not_netns else "")
    nodes = ", ".join(
        f"`{n}` {v['url']}" + (f" (`{v['celery']}`)" if "celery" in v else "")
        for n, v in report["nodes"].items()
    )
    return "\n".join(
        [
            f"Measured by `make scale-test` on {dt.date.today().isoformat()} ({platform.machine()}, "
            f"{os.cpu_count()} cores shared with other work, PostgreSQL and Redis on the same machine); "
            f"{took:.0f} s in all. Nodes: {mode} — {nodes}.",
            "",
            "| scenario | load | result |",
            "|---|---|---|",
            f"| per-key RPM across nodes | key with RPM {rpm['rpm_limit']}, {rpm['sent']} requests at once, "
            f"round-robin over both web nodes | admitted {rpm['admitted_per_node']} = exactly {rpm['rpm_limit']}; "
            f"429 {rpm['refused_429_per_node']} ({rpm['seconds']} s) |",
            f"| holds across nodes | organization funded for exactly {holds['funded_for']} requests "
            f"(hold {holds['hold_units']} units, cost {holds['cost_units']}), {holds['sent']} requests at once "
            f"(half streamed) over both nodes | admitted {holds['admitted_per_node']}, 402 "
            f"{holds['refused_402_per_node']}; charged {holds['charged']}; lowest available balance seen "
            f"{holds['min_available_units_seen']} ({holds['samples']} samples); balance after "
            f"{holds['balance_after_units']} |",
            f"| batch over both workers | {batch['lines']} lines (chunks of 5), uploaded through one web "
            f"node, created through the other | lines run per worker {batch['lines_per_worker']} (from each "
            f"worker's own /metrics); completed in {batch['seconds']} s; one result + one charge per line |",
            f"| kill a web node and a worker mid-load | {kill['clients']} clients (a third streamed) over "
            f"both web nodes + a {kill['batch_lines']}-line batch; SIGKILL of `web2` and `wk1` (while "
            f"running a chunk) with {kill['lines_done_at_kill']} lines done | answered before the kill "
            f"{kill['answered_before_kill_per_node']}, in total {kill['answered_in_total_per_node']}; "
            f"{kill['requests_cut_by_kill']} requests cut on `web2`; {kill['holds_expired']} holds left "
            f"open by the dead nodes, given back by the expiry task on `wk2`'s beat; batch completed "
            f"{kill['batch_completed_seconds_after_kill']} s after the kill; {kill['usage_records']} usage "
            f"records = {kill['usage_records']} charges, Σ {kill['charged_units']} units = the balance's "
            f"drop; `billing_audit` clean |",
            "",
            f"Sizes: `{sizes}`.",
        ]
    )


def _write_doc(block: str) -> None:
    text = DOC.read_text()
    section = f"{BEGIN}\n{block}\n{END}"
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = (
        pattern.sub(lambda _m: section, text)
        if pattern.search(text)
        else text.rstrip() + "\n\n" + section + "\n"
    )
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI sizes")
    parser.add_argument(
        "--no-netns", action="store_true", help="loopback ports instead of network namespaces"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/operations.md")
    args = parser.parse_args(argv)
    database_url = os.environ.get("SCALE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/modelgate_scale")
    redis_url = os.environ.get("SCALE_REDIS_URL", "redis://127.0.0.1:6379/9")
    broker_url = os.environ.get("SCALE_BROKER_URL", "redis://127.0.0.1:6379/10")
    _prepare(database_url, redis_url, broker_url)

    from .harness import LONG, SHORT, cluster_for, run_all

    sizes = SHORT if args.short else LONG
    workdir = Path(tempfile.mkdtemp(prefix="mg-scale-"))
    cluster, why_not = cluster_for(
        database_url=database_url, workdir=workdir, netns=False if args.no_netns else None
    )
    if args.no_netns:
        why_not = "--no-netns"
    print(
        f"nodes: {'network namespaces' if cluster.netns else 'loopback ports (' + why_not + ')'}; logs in {workdir}"
    )
    from .scenarios import catalogue_seeded

    catalogue_seeded()
    started = time.monotonic()
    cluster.start()
    try:
        report = run_all(cluster, sizes)
    except BaseException:
        for node in cluster.nodes.values():
            print(f"--- {node.name} ---\n{node.log_tail(2000)}", file=sys.stderr)
        raise
    finally:
        cluster.stop()
    took = time.monotonic() - started
    print(json.dumps(report, indent=1))
    block = _markdown(report, sizes=sizes, took=took, why_not_netns="" if cluster.netns else why_not)
    print(block)
    if not args.no_docs:
        _write_doc(block)
        print(f"written to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
