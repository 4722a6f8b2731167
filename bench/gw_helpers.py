"""Django-side helpers for bench/run_all.py, run in the project venv against the bench database.

Sub-commands (each prints one JSON line):
  seed --nginx URL --sim URL          org + key + credit + channels; ledger orgs
  counts --since ISO                  usage records since a moment (by model and status)
  ledger --org-id N --procs P --seconds S --amount U --rounds R --exact-org M --exact-n K
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import time


def _setup() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
    django.setup()


def _cmd(*args) -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def seed(nginx: str, sim: str) -> dict:
    _setup()
    from accounts.models import Organization
    from models_catalog.services import channel_create

    slug = _cmd("create_org", "--owner-email", "bench@example.com", "--name", "Bench gateway")
    secret = _cmd("create_api_key", "--org", slug, "--name", "bench")
    _cmd("grant_credit", "--org", slug, "--usd", "100000", "--reason", "bench")
    channel_create(
        name="bench-nginx",
        provider_type="openai",
        base_url=nginx.rstrip("/") + "/v1",
        api_key="sk-bench-upstream",
        model_ids=["gpt-4o-mini"],
    )
    channel_create(
        name="bench-sim",
        provider_type="openai",
        base_url=sim.rstrip("/") + "/v1",
        api_key="sk-bench-sim",
        model_ids=["gpt-4o"],
    )
    ledger_slug = _cmd("create_org", "--owner-email", "ledger@example.com", "--name", "Bench ledger")
    _cmd("grant_credit", "--org", ledger_slug, "--usd", "100000", "--reason", "bench")
    exact_slug = _cmd("create_org", "--owner-email", "exact@example.com", "--name", "Bench exact")
    return {
        "key": secret,
        "org_id": Organization.objects.get(slug=slug).id,
        "ledger_org_id": Organization.objects.get(slug=ledger_slug).id,
        "exact_org_id": Organization.objects.get(slug=exact_slug).id,
    }


def counts(since: str) -> dict:
    _setup()
    from django.db.models import Count

    from inference.models import UsageRecord

    rows = (
        UsageRecord.objects.filter(created_at__gte=since)
        .values("model", "status", "stream")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {"rows": list(rows)}


def _ledger_init(barrier) -> None:
    _setup()
    from django.db import connection

    connection.ensure_connection()
    barrier.wait(timeout=300)


def _ledger_child(args) -> dict:
    org_id, amount, start_at, deadline, until_empty, idx = args
    from billing.errors import InsufficientBalance
    from billing.services import hold_place, hold_settle

    settled = refused = 0
    while time.time() < start_at:
        time.sleep(0.001)
    i = 0
    while time.time() < deadline:
        i += 1
        try:
            hold = hold_place(org_id=org_id, amount_units=amount, reference=f"bench-{idx}-{i}")
        except InsufficientBalance:
            refused += 1
            if until_empty:
                break  # available never grows again: settles charge exactly the hold
            continue
        hold_settle(hold_id=hold, actual_units=amount, idempotency_key=f"bench-{start_at}-{idx}-{i}")
        settled += 1
    return {"settled": settled, "refused": refused, "ended": time.time()}


def _ledger_round(pool, procs: int, org_id: int, amount: int, seconds: float, until_empty: bool) -> dict:
    start_at = time.time() + 0.2
    deadline = start_at + seconds
    results = pool.map(
        _ledger_child,
        [(org_id, amount, start_at, deadline, until_empty, i) for i in range(procs)],
        chunksize=1,
    )
    elapsed = max(r["ended"] for r in results) - start_at
    from billing.models import BillingAccount

    acc = BillingAccount.objects.get(organization_id=org_id)
    settled = sum(r["settled"] for r in results)
    return {
        "procs": procs,
        "settled": settled,
        "refused": sum(r["refused"] for r in results),
        "elapsed_s": elapsed,
        "rate": settled / elapsed,
        "balance_units": acc.balance_units,
        "held_units": acc.held_units,
    }


def ledger(
    org_id: int, procs: int, seconds: float, amount: int, rounds: int, exact_org: int, exact_n: int
) -> dict:
    """``rounds`` timed rounds against ``org_id``; then ``exact_org`` funded with exactly ``exact_n`` charges."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs + 1)
    with ctx.Pool(procs, initializer=_ledger_init, initargs=(barrier,)) as pool:
        barrier.wait(timeout=300)  # every child has Django set up and a connection open
        _setup()
        out = {"rounds": [_ledger_round(pool, procs, org_id, amount, seconds, False) for _ in range(rounds)]}
        if exact_org:
            from billing.services import credit_adjust

            credit_adjust(
                org_id=exact_org, amount_units=exact_n * amount, reason="bench exact", acting_user=None
            )
            out["exact"] = _ledger_round(pool, procs, exact_org, amount, 120, True)
            out["exact"]["funded_charges"] = exact_n
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seed")
    s.add_argument("--nginx", required=True)
    s.add_argument("--sim", required=True)
    c = sub.add_parser("counts")
    c.add_argument("--since", required=True)
    ld = sub.add_parser("ledger")
    ld.add_argument("--org-id", type=int, required=True)
    ld.add_argument("--procs", type=int, default=16)
    ld.add_argument("--seconds", type=float, default=8)
    ld.add_argument("--amount", type=int, default=1000)
    ld.add_argument("--rounds", type=int, default=3)
    ld.add_argument("--exact-org", type=int, default=0)
    ld.add_argument("--exact-n", type=int, default=3000)
    a = p.parse_args()
    if a.cmd == "seed":
        out = seed(a.nginx, a.sim)
    elif a.cmd == "counts":
        out = counts(a.since)
    else:
        out = ledger(a.org_id, a.procs, a.seconds, a.amount, a.rounds, a.exact_org, a.exact_n)
    print("RESULT " + json.dumps(out, default=str))


if __name__ == "__main__":
    main()
