"""Print the money-path simulation's figures and write them into docs/reliability.md.

    python -m tests.sim.report artifacts/sim-soak.json [docs/reliability.md]

Only the part between ``<!-- reliability:simulation -->`` and ``<!-- /reliability:simulation -->``
is written (other sections of the file belong to other reports); the file is created with a
``# Reliability`` title when missing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

START, END = "<!-- reliability:simulation -->", "<!-- /reliability:simulation -->"
USD = 1_000_000_000


def _usd(units: int) -> str:
    return f"${units / USD:,.6f}"


def render(f: dict, *, database: str) -> str:
    ops = "\n".join(f"| {kind} | {n} |" for kind, n in f["ops"].items())
    outcomes = "\n".join(f"| {name} | {n} |" for name, n in f["outcomes"].items())
    seeds = ", ".join(map(str, f["seeds"]))
    return f"""{START}
## Money-path simulation (`make soak`)

A seeded driver (`tests/sim/driver.py`) interleaves, from one integer seed, live chat calls
through the `openai` and `anthropic` SDKs (streamed or not, with simulator faults and client
hang-ups), batches run by a real Celery worker that is SIGKILLed and restarted, Stripe top-ups
on localstripe whose signed webhooks arrive in random order with duplicates, replays and forged
signatures, refunds, redemption codes, operator adjustments and hold expiry. After every step it
checks the ledger audit, its own model of the balance, one charge per charged usage record and
the available balance; at the end of each seed every event is delivered, every batch line has
exactly one result and every hold has ended. CI runs 3 fixed seeds and a random one; a failure
prints `SEED=<n>` and `MODELGATE_SIM_SEED=<n> MODELGATE_SIM_STEPS=<steps> make soak` replays it.

Last soak: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {database}, {platform.machine()} with
{os.cpu_count()} cores (shared), {f["wall_seconds"] / 60:.1f} minutes.

| figure | value |
|---|---|
| seeds | {len(f["seeds"])} ({seeds}) |
| steps | {f["steps"]} |
| invariant checks (each: audit + model + per-record charges + available) | {f["checks"]} |
| usage records checked | {f["usage_records"]} |
| batch lines checked (one result, at most one charge) | {f["batch_lines"]} |
| credited (top-ups, bonuses, redemptions, adjustments, net of refunds) | {_usd(f["credited_units"])} |
| charged for usage | {_usd(f["charged_units"])} |
| **money lost or doubled** | **{_usd(f["discrepancy_units"])}** |

| operation | count |
|---|---|
{ops}

<details><summary>Outcomes</summary>

| outcome | count |
|---|---|
{outcomes}

</details>
{END}"""


def write(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.exists() else "# Reliability\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _old, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    doc.write_text(text)


def main(argv: list[str]) -> None:
    figures = json.loads(Path(argv[0]).read_text())
    database = "PostgreSQL + Redis" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    section = render(figures, database=database)
    print(section)
    if len(argv) > 1:
        write(Path(argv[1]), section)
        print(f"\nwritten to {argv[1]}")


if __name__ == "__main__":
    main(sys.argv[1:])
