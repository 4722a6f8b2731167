"""The seeded money-path simulation (tests/sim/driver.py).

CI: a few fixed seeds and one random seed, short. ``make soak`` runs the same test long
(MODELGATE_SIM_STEPS per seed, new random seeds for SOAK_MINUTES) and writes the figures to
docs/reliability.md. A failure prints ``SEED=<n>`` and the command that replays it:
``MODELGATE_SIM_SEED=<n> MODELGATE_SIM_STEPS=<steps> make soak``.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from .driver import MoneyPathSim, Summary, plan

pytestmark = pytest.mark.django_db(transaction=True)

CI_SEEDS = [1, 2, 3]
CI_STEPS = 24


def _seeds() -> tuple[list[int], float]:
    """(seeds to run first, minutes to keep going with new random seeds)."""
    fixed = os.environ.get("MODELGATE_SIM_SEED", "").strip()
    minutes = float(os.environ.get("SOAK_MINUTES") or 0)
    if fixed:
        return [int(s) for s in fixed.split(",")], 0.0
    if minutes:
        return [], minutes
    return [*CI_SEEDS, random.SystemRandom().randrange(1, 10**6)], 0.0


def test_same_seed_same_operations():
    assert plan(42, 300) == plan(42, 300)
    assert plan(42, 300) != plan(43, 300)
    kinds = {op.kind for op in plan(7, 30)}
    assert {"chat", "batch", "worker_kill", "topup", "deliver", "refund", "redeem", "expire"} <= kinds


def test_money_path_simulation(sim_env):
    steps = int(os.environ.get("MODELGATE_SIM_STEPS") or CI_STEPS)
    seeds, minutes = _seeds()
    summary = Summary()
    started = time.monotonic()
    pending = list(seeds)
    while pending or (minutes and time.monotonic() - started < minutes * 60):
        seed = pending.pop(0) if pending else random.SystemRandom().randrange(1, 10**6)
        print(f"\nmoney-path simulation: SEED={seed}, {steps} steps", flush=True)
        MoneyPathSim(sim_env, seed, steps, summary).run()
    figures = summary.as_dict()
    figures["wall_seconds"] = round(time.monotonic() - started, 1)
    print("\nmoney-path simulation summary:\n" + json.dumps(figures, indent=2))
    out = os.environ.get("MODELGATE_SIM_SUMMARY")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(figures, indent=2) + "\n")
    assert summary.discrepancy_units == 0
    assert summary.checks >= summary.steps
