"""A seeded simulation of the whole money path (issue #9).

From one integer seed, ``plan`` draws a list of operations (``random.Random(seed)`` only, never
the clock or an outcome), so the same seed replays the same operations. ``MoneyPathSim`` runs
them against a live gateway (uvicorn + the ASGI app) in front of the upstream simulator, with a
real Celery worker process for batch lines, localstripe for payments and the gateway's own
``/stripe/webhook/`` for signed events:

* live chat calls through the official ``openai`` and ``anthropic`` SDKs, streamed or not, same
  format or translated, some with simulator faults (5xx, a reset or an error mid-stream,
  malformed JSON, missing or zero usage) and some with the client hanging up mid-stream;
* batches over ``/v1/files`` + ``/v1/batches`` (lines with faults too) run by the worker, and a
  SIGKILL of the worker (and its pool) followed by a restart;
* Stripe top-ups: a Checkout Session through ``/api/topups``, a real PaymentIntent on
  localstripe, and its events (``payment_intent.succeeded``, ``checkout.session.completed``,
  ``charge.refunded`` for real localstripe refunds) delivered signed, in random order, with
  duplicates, replays and forged signatures;
* redemption codes through ``/api/redeem`` (and a second use of the same code), operator credit
  adjustments, and hold expiry (the Celery task on the worker, or a jump in time).

After every operation ``check`` verifies, in one consistent snapshot of the database: the
ledger audit (balance == Σ entries, held == Σ open holds, no hold ended twice, top-ups), the
driver's own model of the balance (credits it knows of minus the usage records' charges),
exactly one ledger charge per charged usage record and none for the others, and that the
available balance only goes below zero through a debit nobody admits (a refund, an operator
debit, an overrun or a settlement after expiry). At the end of a seed every event is delivered,
every batch finishes (each line one result, at most one charge) and every hold is ended, and the
model must match to the nano-dollar.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import openai
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

USD = 1_000_000_000
CENT = USD // 100

# What a step can be, and how often (relative weights).
WEIGHTS = {
    "chat": 40,
    "batch": 7,
    "batch_wait": 3,
    "worker_kill": 2,
    "topup": 7,
    "deliver": 14,
    "replay": 4,
    "forged_webhook": 2,
    "refund": 5,
    "redeem": 5,
    "adjust": 4,
    "expire": 4,
}

# Simulator faults for live calls: (directive, applies to streams, applies to non-streams).
CHAT_FAULTS = {
    "none": ("", True, True),
    "http_500": ("fault=500", True, True),
    "http_503": ("fault=503", True, True),
    "http_429": ("fault=429 retry_after=0", True, True),
    "reset_mid_stream": ("fault=disconnect_mid_stream", True, True),
    "error_mid_stream": ("fault=error_mid_stream", True, False),
    "malformed": ("fault=malformed_json", False, True),
    "usage_missing": ("usage=missing", True, True),
    "usage_zero": ("usage=zero", True, True),
}
NO_CHARGE_FAULTS = {"http_500", "http_503", "http_429", "malformed"}
LINE_FAULTS = {"none": "", "http_500": "fault=500", "usage_missing": "usage=missing"}
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5"}


@dataclass(frozen=True)
class Op:
    n: int
    kind: str
    args: dict

    def __str__(self) -> str:
        return f"{self.n:04d} {self.kind} {json.dumps(self.args, sort_keys=True)}"


def _chat_args(rng: random.Random) -> dict:
    stream = rng.random() < 0.55
    faults = [name for name, (_d, s, j) in CHAT_FAULTS.items() if (s if stream else j)]
    fault = "none" if rng.random() < 0.5 else rng.choice(faults)
    return {
        "sdk": rng.choice(["openai", "anthropic"]),
        "model": rng.choice(["openai", "openai", "anthropic"]),
        "stream": stream,
        "fault": fault,
        # The client hangs up after this many events (streams only).
        "hang_up_after": rng.choice([1, 2, 4])
        if stream and fault == "none" and rng.random() < 0.35
        else None,
        "tokens": rng.randint(4, 90),
        # None: the hold covers the model's maximum output, lowered to what a small balance covers.
        "max_tokens": rng.choice([None, 32, 64, 128, 256]),
    }


def _op_args(kind: str, rng: random.Random) -> dict:
    if kind == "chat":
        return _chat_args(rng)
    if kind == "batch":
        n = rng.randint(2, 7)
        return {
            "endpoint": rng.choice(["/v1/chat/completions", "/v1/chat/completions", "/v1/messages"]),
            "latency_ms": rng.choice([10, 40, 80]),
            "lines": [rng.choice(["none", "none", "none", "http_500", "usage_missing"]) for _ in range(n)],
        }
    if kind == "topup":
        return {"cents": rng.choice([500, 700, 2_000, 10_000])}
    if kind in ("deliver", "replay", "forged_webhook"):
        return {"pick": rng.random(), "keep_for_duplicate": rng.random() < 0.3}
    if kind == "refund":
        return {"pick": rng.random(), "fraction": rng.choice([0.1, 0.25, 0.5, 1.0])}
    if kind == "redeem":
        return {"value_units": rng.randint(1, 300) * CENT // 10, "use_twice": rng.random() < 0.3}
    if kind == "adjust":
        # A debit of ``value_units``, or (``leave``) one that drains the account down to a few
        # nano-dollars, so that requests are refused (402) or get a lowered max_tokens.
        return {
            "sign": rng.choice([1, 1, -1]),
            "value_units": rng.randint(1, 5_000) * CENT // 100,
            "leave": rng.choice([None, None, 0, 2_000, 200_000]),
        }
    if kind == "expire":
        return {"how": rng.choice(["task", "task", "time_jump"])}
    return {}


def plan(seed: int, steps: int) -> list[Op]:
    """The operations of a seed: every kind at least once (when there is room), the rest drawn
    by weight, in an order drawn from the seed."""
    rng = random.Random(seed)
    kinds = list(WEIGHTS) if steps >= 2 * len(WEIGHTS) else []
    kinds += rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()), k=steps - len(kinds))
    rng.shuffle(kinds)
    return [Op(n, kind, _op_args(kind, rng)) for n, kind in enumerate(kinds, start=1)]


def expected_bonus(cents: int, first: bool) -> int:
    """The seeded bonus rules, restated: first top-up ≥ $5 → +$1; ≥ $100 → +5 %; ≥ $500 → +10 %."""
    units = cents * CENT
    percent = 10 if cents >= 50_000 else 5 if cents >= 10_000 else 0
    return units * percent // 100 + (USD if first and cents >= 500 else 0)


class SimFailure(AssertionError):
    pass


@dataclass
class Summary:
    seeds: list[int] = field(default_factory=list)
    steps: int = 0
    ops: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    checks: int = 0
    usage_records: int = 0
    batch_lines: int = 0
    charged_units: int = 0
    credited_units: int = 0
    discrepancy_units: int = 0  # |model − ledger|, summed over seeds: money lost or doubled
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "seeds": self.seeds,
            "steps": self.steps,
            "ops": dict(sorted(self.ops.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "checks": self.checks,
            "usage_records": self.usage_records,
            "batch_lines": self.batch_lines,
            "charged_units": self.charged_units,
            "credited_units": self.credited_units,
            "discrepancy_units": self.discrepancy_units,
            "seconds": round(self.seconds, 1),
        }


@dataclass
class TopUpModel:
    pk: int
    cents: int
    pi: str
    credited: bool = False
    bonus: int = 0
    seen_refunded: int = 0  # highest cumulative refund delivered
    applied_refunded: int = 0
    stripe_refunded: int = 0  # refunded on localstripe (delivered or not)


@dataclass
class Env:
    """What the simulation runs against (built by the test's fixtures)."""

    gateway_url: str
    workers: object  # tests.jobs.conftest.Workers
    localstripe: object  # tests.billing.stripe_support.LocalStripe
    stripe_client: object  # stripe.StripeClient on localstripe
    make_org: object
    session_client: object
    log_dir: Path


def replay_hint(seed: int, steps: int) -> str:
    return (
        f"SEED={seed}\n  replay: MODELGATE_SIM_SEED={seed} MODELGATE_SIM_STEPS={steps} make soak\n"
        f"  or:     MODELGATE_SIM_SEED={seed} MODELGATE_SIM_STEPS={steps} "
        ".venv/bin/python -m pytest tests/sim -x -s"
    )


@contextlib.contextmanager
def snapshot():
    """One consistent view of the database while workers and the gateway keep writing."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield  # SQLite: the IMMEDIATE transaction holds the write lock meanwhile


class MoneyPathSim:
    def __init__(self, env: Env, seed: int, steps: int, summary: Summary) -> None:
        from accounts.services import api_key_create
        from billing.services import billing_account_for_org

        self.env, self.seed, self.steps, self.summary = env, seed, steps, summary
        self.ops = plan(seed, steps)
        self.rng = random.Random(seed * 7919 + 1)  # the end-of-run delivery order
        self.owner = env.make_org(name=f"Sim {seed}")
        self.org_id = self.owner.organization_id
        self.account_id = billing_account_for_org(org_id=self.org_id).pk
        _key, self.secret = api_key_create(actor=self.owner, name=f"sim {seed}")
        self.api = env.session_client(self.owner)
        self.oa = openai.OpenAI(
            api_key=self.secret, base_url=env.gateway_url + "/v1", max_retries=0, timeout=60
        )
        self.an = anthropic.Anthropic(
            api_key=self.secret, base_url=env.gateway_url, max_retries=0, timeout=60
        )
        # The model: every credit and debit the driver knows of, except usage (read from records).
        self.credits = 0
        self.topups: list[TopUpModel] = []
        self.any_credited = False
        self.mailbox: list[str] = []  # signed events not delivered yet
        self.delivered: list[str] = []
        self.batches: list[dict] = []
        self.last_entry_id = 0
        self.last_available = 0
        env.log_dir.mkdir(parents=True, exist_ok=True)
        self.done = 0
        self.op_log = env.log_dir / f"seed-{seed}-{steps}.ops"
        self.op_log.write_text("".join(f"{op}\n" for op in self.ops))

    # --- running ------------------------------------------------------------------------------

    def run(self) -> None:
        started = time.monotonic()
        self.summary.seeds.append(self.seed)
        current = None
        try:
            current = "initial credit"
            self._adjust({"sign": 1, "value_units": 5 * USD})
            self.check("initial credit")
            for op in self.ops:
                current = str(op)
                getattr(self, f"_{op.kind}")(op.args)
                self.done += 1
                self.summary.ops[op.kind] += 1
                self.summary.steps += 1
                self.check(current)
            current = "settle everything"
            self.settle_all()
        except Exception as exc:
            done = [str(op) for op in self.ops[: self.done + 1]][-8:]
            raise SimFailure(
                f"money-path simulation failed at step {current!r}\n{replay_hint(self.seed, self.steps)}\n"
                f"  operations: {self.op_log}\n  last operations:\n    " + "\n    ".join(done) + "\n"
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            self.summary.seconds += time.monotonic() - started

    # --- live calls ---------------------------------------------------------------------------

    def _prompt(self, directive: str, tag: str) -> str:
        return f"[[sim {directive}]] seed {self.seed} {tag}" if directive else f"seed {self.seed} {tag}"

    def _chat(self, a: dict) -> None:
        directive, _s, _j = CHAT_FAULTS[a["fault"]]
        max_tokens = a["max_tokens"]
        if max_tokens is None and a["sdk"] == "anthropic":
            max_tokens = 256  # required by the Messages API
        if a["hang_up_after"]:
            # Long enough (≈ 0.5 s) that the client is gone before the upstream has finished.
            controls, max_tokens = "tokens=200 chunks=50 chunk_delay_ms=10", 256
        else:
            controls = f"tokens={a['tokens']} chunks={min(a['tokens'], 12)} " + directive
            if a["stream"]:
                controls += " chunk_delay_ms=2"
        text = self._prompt(controls.strip(), f"chat {a}")
        model = MODELS[a["model"]]
        request_id, status, events = None, 200, 0
        try:
            if a["sdk"] == "openai":
                raw = self.oa.chat.completions.with_raw_response.create(
                    model=model,
                    max_tokens=openai.omit if max_tokens is None else max_tokens,
                    messages=[{"role": "user", "content": text}],
                    stream=a["stream"],
                )
            else:
                raw = self.an.messages.with_raw_response.create(
                    model=model,
                    max_tokens=max_tokens,
                    messages=[{"role": "user", "content": text}],
                    stream=a["stream"],
                )
            request_id = raw.headers.get("x-request-id")
            result = raw.parse()
            if a["stream"]:
                try:
                    for _event in result:
                        events += 1
                        if a["hang_up_after"] and events >= a["hang_up_after"]:
                            break  # the client goes away mid-stream
                except (openai.APIError, anthropic.APIError, ValueError) as exc:
                    status = -1  # the stream broke off (an error event or a reset)
                    self.summary.outcomes[f"chat:stream_broke:{type(exc).__name__}"] += 1
                finally:
                    result.close()
        except (openai.APIStatusError, anthropic.APIStatusError) as exc:
            status = exc.status_code
            request_id = exc.response.headers.get("x-request-id")
        except (openai.APIConnectionError, anthropic.APIConnectionError):
            status = -2
        self._wait_pumps()
        self._check_live_record(a, request_id, status)

    def _wait_pumps(self, timeout: float = 30.0) -> None:
        from inference.relay import _background

        deadline = time.monotonic() + timeout
        while _background and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not _background, f"{len(_background)} stream(s) still settling after {timeout} s"

    def _check_live_record(self, a: dict, request_id: str | None, status: int) -> None:
        """One usage record for the request; charged iff output was produced, once."""
        from billing.models import Hold, LedgerEntry
        from inference.models import UsageRecord

        assert request_id, f"no x-request-id (HTTP {status})"
        if status == 402:
            # Refused before any money moved: no hold, no charge, no record.
            assert not Hold.objects.filter(reference=request_id).exists(), "a refused request held money"
            assert not LedgerEntry.objects.filter(idempotency_key=f"usage:{request_id}").exists()
            assert not UsageRecord.objects.filter(request_id=request_id).exists()
            self.summary.outcomes["chat:refused_402"] += 1
            return
        record = UsageRecord.objects.filter(request_id=request_id).first()
        assert record is not None, f"no usage record for {request_id} (HTTP {status})"
        entries = list(LedgerEntry.objects.filter(idempotency_key=f"usage:{request_id}"))
        if record.cost_units:
            assert [e.amount_units for e in entries] == [-record.cost_units], (request_id, entries)
        else:
            assert entries == [], f"{request_id} has charges but its record says 0"
        assert not Hold.objects.filter(reference=request_id, status="open").exists(), "hold left open"
        fault = a["fault"]
        if fault in NO_CHARGE_FAULTS:
            assert status >= 400, f"{fault}: HTTP {status}"
            assert record.cost_units == 0, f"{fault} charged {record.cost_units}"
        elif fault == "reset_mid_stream" and not a["stream"]:
            assert status >= 500, status  # broke before the body was complete: an error, no charge
            assert record.cost_units == 0, record.cost_units
        else:
            # Output was produced: charged, never zero (estimated when the upstream didn't say).
            assert record.cost_units > 0, f"{fault}: produced output but charged 0 ({record.status})"
            if fault in ("usage_missing", "usage_zero"):
                assert record.usage_source == "estimated", record.usage_source
            if a["hang_up_after"]:
                assert record.status == "client_disconnected", record.status
        label = "hung_up" if a["hang_up_after"] else fault
        self.summary.outcomes[f"chat:{label}:{record.status}"] += 1

    # --- batches ------------------------------------------------------------------------------

    def _batch(self, a: dict) -> None:
        lines = []
        for i, fault in enumerate(a["lines"]):
            directive = f"latency_ms={a['latency_ms']} tokens={8 + i}"
            if LINE_FAULTS[fault]:
                directive += " " + LINE_FAULTS[fault]
            text = self._prompt(directive, f"batch line {i}")
            if a["endpoint"] == "/v1/messages":
                body = {
                    "model": MODELS["anthropic"],
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": text}],
                }
            else:
                body = {
                    "model": MODELS["openai"],
                    "max_tokens": 64,
                    "messages": [{"role": "user", "content": text}],
                }
            lines.append({"custom_id": f"line-{i}", "method": "POST", "url": a["endpoint"], "body": body})
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        uploaded = self.oa.files.create(file=("sim.jsonl", data), purpose="batch")
        batch = self.oa.batches.create(
            input_file_id=uploaded.id,
            endpoint=a["endpoint"],  # type: ignore[arg-type]
            completion_window="24h",
        )
        self.batches.append({"id": batch.id, "faults": a["lines"], "checked": False})

    def _batch_wait(self, a: dict) -> None:
        pending = [b for b in self.batches if not b["checked"]]
        if not pending:
            self.summary.outcomes["batch_wait:nothing_pending"] += 1
            return
        self._finish_batch(pending[0])

    def _finish_batch(self, b: dict, timeout: float = 120.0) -> None:
        """The batch completes; every line exactly one result, at most one charge."""
        from billing.models import LedgerEntry
        from inference.models import BatchLine, UsageRecord

        deadline = time.monotonic() + timeout
        while True:
            batch = self.oa.batches.retrieve(b["id"])
            if batch.status in ("completed", "failed", "expired", "cancelled"):
                break
            assert time.monotonic() < deadline, f"batch {b['id']} still {batch.status} after {timeout} s"
            time.sleep(0.1)
        assert batch.status == "completed", f"batch {b['id']} {batch.status}: {batch.errors}"
        n = len(b["faults"])
        results = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                results += [
                    json.loads(x) for x in self.oa.files.content(file_id).text.splitlines() if x.strip()
                ]
        assert Counter(r["custom_id"] for r in results) == Counter(f"line-{i}" for i in range(n)), results
        for line in BatchLine.objects.filter(batch__public_id=b["id"]).order_by("line_no"):
            i = int(line.custom_id.split("-")[1])
            fault = b["faults"][i]
            records = list(UsageRecord.objects.filter(request_id=line.request_id))
            charges = list(
                LedgerEntry.objects.filter(idempotency_key=f"usage:{line.request_id}").values_list(
                    "amount_units", flat=True
                )
            )
            assert len(records) <= 1, (line.request_id, records)
            assert len(charges) <= 1, (line.request_id, charges)
            if line.status == "succeeded":
                assert fault != "http_500", f"{line.request_id}: a failing upstream succeeded"
                assert records, f"{line.request_id}: succeeded without a usage record"
                assert line.usage_record_id == records[0].pk
                assert records[0].cost_units > 0, records[0]
                assert charges == [-records[0].cost_units], charges
                self.summary.outcomes[f"batch_line:{fault}:succeeded"] += 1
            else:
                assert line.status == "failed", line.status
                assert charges == [] or (records and charges == [-records[0].cost_units])
                if fault == "http_500":
                    assert charges == [], f"{line.request_id}: a failed upstream was charged"
                self.summary.outcomes[f"batch_line:{fault}:failed:{line.status_code}"] += 1
            self.summary.batch_lines += 1
        b["checked"] = True

    def _worker_kill(self, a: dict) -> None:
        """SIGKILL the worker (and its pool) — mid-batch when one is running — and start another."""
        from inference.models import BatchLine

        workers = self.env.workers
        running = [b for b in self.batches if not b["checked"]]
        if running:
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                if (
                    BatchLine.objects.filter(batch__public_id=running[-1]["id"])
                    .exclude(status="pending")
                    .exists()
                ):
                    break
                time.sleep(0.02)
        alive = [p for p in workers.procs if p.poll() is None]
        for proc in alive:
            workers.kill(proc)
        self.summary.outcomes["worker_kill:mid_batch" if running else "worker_kill:idle"] += 1
        workers.start(beat=True, concurrency=2, **worker_env())

    # --- Stripe ---------------------------------------------------------------------------------

    def _topup(self, a: dict) -> None:
        from billing.models import TopUp
        from tests.billing.stripe_support import checkout_completed, event

        cents = a["cents"]
        response = self.api.post("/api/topups", {"amount_usd": f"{cents / 100:.2f}"}, format="json")
        assert response.status_code == 201, response.content
        topup = TopUp.objects.get(pk=response.json()["topup_id"])
        pi = self.env.stripe_client.v1.payment_intents.create(
            params={
                "amount": cents,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "metadata": {"topup_id": str(topup.pk)},
            }
        )
        assert pi.status == "succeeded", pi.status
        self.topups.append(TopUpModel(pk=topup.pk, cents=cents, pi=pi.id))
        real = self.env.localstripe.get(f"/v1/payment_intents/{pi.id}")
        self.mailbox.append(event("payment_intent.succeeded", real))
        self.mailbox.append(
            checkout_completed(topup_id=topup.pk, pi=pi.id, cents=cents, session_id=topup.checkout_session_id)
        )

    def _refund(self, a: dict) -> None:
        from tests.billing.stripe_support import event

        candidates = [t for t in self.topups if t.stripe_refunded < t.cents]
        if not candidates:
            self.summary.outcomes["refund:nothing_to_refund"] += 1
            return
        t = candidates[int(a["pick"] * len(candidates))]
        cents = max(1, int((t.cents - t.stripe_refunded) * a["fraction"]))
        refund = self.env.stripe_client.v1.refunds.create(params={"payment_intent": t.pi, "amount": cents})
        assert refund.amount == cents
        t.stripe_refunded += cents
        pi = self.env.localstripe.get(f"/v1/payment_intents/{t.pi}")
        charge_id = (
            pi["latest_charge"]["id"] if isinstance(pi["latest_charge"], dict) else pi["latest_charge"]
        )
        charge = self.env.localstripe.get(f"/v1/charges/{charge_id}")
        assert charge["amount_refunded"] == t.stripe_refunded, charge["amount_refunded"]
        self.mailbox.append(event("charge.refunded", charge))

    def _post_webhook(self, payload: str, signature: str) -> int:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.env.gateway_url + "/stripe/webhook/", data=payload.encode())
        request.add_header("Content-Type", "application/json")
        request.add_header("Stripe-Signature", signature)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _deliver_payload(self, payload: str) -> None:
        from tests.billing.stripe_support import sign

        status = self._post_webhook(payload, sign(payload))
        assert status == 200, f"webhook answered {status}"
        self._apply_event(json.loads(payload))

    def _apply_event(self, event: dict) -> None:
        """What a delivered event does to the model (the dispatcher's rules, restated)."""
        obj = event["data"]["object"]
        kind = event["type"]
        if kind in ("payment_intent.succeeded", "checkout.session.completed"):
            pi = obj["id"] if kind == "payment_intent.succeeded" else obj["payment_intent"]
            t = next(t for t in self.topups if t.pi == pi)
            if not t.credited:
                t.credited = True
                t.bonus = expected_bonus(t.cents, first=not self.any_credited)
                self.any_credited = True
                self.credits += t.cents * CENT + t.bonus
                self._apply_refund(t)
                self.summary.outcomes["webhook:credited"] += 1
            else:
                self.summary.outcomes["webhook:already_credited"] += 1
        elif kind == "charge.refunded":
            t = next(t for t in self.topups if t.pi == obj["payment_intent"])
            t.seen_refunded = max(t.seen_refunded, obj["amount_refunded"])
            if t.credited:
                self._apply_refund(t)
            self.summary.outcomes["webhook:refund" + ("" if t.credited else "_before_credit")] += 1

    def _apply_refund(self, t: TopUpModel) -> None:
        target = min(t.seen_refunded, t.cents)
        if target <= t.applied_refunded:
            return
        claw_before = t.bonus * t.applied_refunded // t.cents
        claw_after = t.bonus * target // t.cents
        self.credits -= (target - t.applied_refunded) * CENT + (claw_after - claw_before)
        t.applied_refunded = target

    def _deliver(self, a: dict) -> None:
        if not self.mailbox:
            self.summary.outcomes["deliver:empty_mailbox"] += 1
            return
        i = int(a["pick"] * len(self.mailbox))
        payload = self.mailbox[i] if a["keep_for_duplicate"] else self.mailbox.pop(i)
        self._deliver_payload(payload)
        if not a["keep_for_duplicate"]:
            self.delivered.append(payload)

    def _replay(self, a: dict) -> None:
        if not self.delivered:
            self.summary.outcomes["replay:nothing_delivered"] += 1
            return
        self._deliver_payload(self.delivered[int(a["pick"] * len(self.delivered))])
        self.summary.outcomes["webhook:replayed"] += 1

    def _forged_webhook(self, a: dict) -> None:
        """A forged or stale signature is refused (400) and changes nothing."""
        from tests.billing.stripe_support import sign

        pool = self.mailbox + self.delivered
        if not pool:
            self.summary.outcomes["forged:nothing"] += 1
            return
        payload = pool[int(a["pick"] * len(pool))]
        before = self._stripe_state()
        if a["keep_for_duplicate"]:
            signature = sign(payload, secret="whsec_" + "x" * 32)  # wrong secret
        else:
            signature = sign(payload, timestamp=int(time.time()) - 3600)  # replayed an hour later
        assert self._post_webhook(payload, signature) == 400
        # (Not the balance: batch lines may be settling on the worker meanwhile.)
        assert self._stripe_state() == before, "a refused webhook changed something"
        self.summary.outcomes["webhook:forged_refused"] += 1

    def _stripe_state(self) -> tuple:
        from billing.models import LedgerEntry, StripeEvent, TopUp

        return (
            StripeEvent.objects.count(),
            list(
                LedgerEntry.objects.filter(account_id=self.account_id, topup__isnull=False)
                .order_by("pk")
                .values_list("pk", "amount_units")
            ),
            list(TopUp.objects.filter(account_id=self.account_id).order_by("pk").values_list("pk", "status")),
        )

    # --- other money ------------------------------------------------------------------------------

    def _redeem(self, a: dict) -> None:
        from billing.services import redemption_batch_create

        _batch, [code] = redemption_batch_create(count=1, value_units=a["value_units"], note="sim")
        response = self.api.post("/api/redeem", {"code": code}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["credited_units"] == a["value_units"]
        self.credits += a["value_units"]
        if a["use_twice"]:
            again = self.api.post("/api/redeem", {"code": code}, format="json")
            assert again.status_code == 409, again.content
            self.summary.outcomes["redeem:second_use_refused"] += 1

    def _adjust(self, a: dict) -> None:
        """An operator credit, or a debit of at most what is available now (or down to ``leave``)."""
        from billing.services import credit_adjust

        amount = a["value_units"]
        if a["sign"] < 0:
            available = max(self._available(), 0)
            amount = -(available - a["leave"] if a.get("leave") is not None else min(amount, available))
            if amount >= 0:
                self.summary.outcomes["adjust:nothing_to_debit"] += 1
                return
            if a.get("leave") is not None:
                self.summary.outcomes[f"adjust:drained_to_{a['leave']}"] += 1
        credit_adjust(
            org_id=self.org_id, amount_units=amount, reason="simulation", acting_user=self.owner.user
        )
        self.credits += amount

    def _expire(self, a: dict) -> None:
        from billing.services import holds_expire
        from billing.tasks import holds_expire_task

        if a["how"] == "task":
            # The periodic task, run by the worker: expires holds whose TTL has passed.
            ended = holds_expire_task.delay().get(timeout=60)
        else:
            # Time jumps past every hold's TTL: in-flight batch lines settle after their expiry.
            ended = holds_expire(
                now=timezone.now() + dt.timedelta(seconds=settings.BILLING_HOLD_TTL_SECONDS + 1)
            )
        self.summary.outcomes[f"expire:{a['how']}:{'some' if ended else 'none'}"] += 1

    # --- invariants ---------------------------------------------------------------------------------

    def _available(self) -> int:
        from billing.models import BillingAccount

        balance, held = BillingAccount.objects.values_list("balance_units", "held_units").get(
            pk=self.account_id
        )
        return balance - held

    def check(self, where: str) -> None:
        from billing.models import BillingAccount, Hold, LedgerEntry
        from billing.selectors import ledger_audit
        from inference.models import UsageRecord

        with snapshot():
            problems = ledger_audit()
            assert problems == [], "ledger audit: " + "; ".join(map(str, problems))
            balance, held = BillingAccount.objects.values_list("balance_units", "held_units").get(
                pk=self.account_id
            )
            records = dict(
                UsageRecord.objects.filter(organization_id=self.org_id).values_list(
                    "request_id", "cost_units"
                )
            )
            usage_entries = dict(
                LedgerEntry.objects.filter(account_id=self.account_id, kind="usage").values_list(
                    "idempotency_key", "amount_units"
                )
            )
            new_entries = list(
                LedgerEntry.objects.filter(account_id=self.account_id, pk__gt=self.last_entry_id).values_list(
                    "pk", "kind", "amount_units", "hold_id", "metadata"
                )
            )
            hold_amounts = dict(
                Hold.objects.filter(pk__in=[e[3] for e in new_entries if e[3]]).values_list(
                    "pk", "amount_units"
                )
            )
        charged = sum(records.values())
        # Every usage record charged exactly once (and nothing charged without a record).
        expected_entries = {f"usage:{rid}": -cost for rid, cost in records.items() if cost}
        assert usage_entries == expected_entries, _diff("usage entries", expected_entries, usage_entries)
        # The driver's model: credits it knows of − the usage records' charges.
        model = self.credits - charged
        assert balance == model, (
            f"balance {balance} != model {model} (credits {self.credits} − usage {charged})"
        )
        assert held >= 0, f"held {held}"
        available = balance - held
        if available < 0 and available < self.last_available:
            uncontrolled = [
                e
                for e in new_entries
                if e[1] in ("refund", "bonus_clawback")
                or (e[1] == "adjustment" and e[2] < 0)
                or (
                    e[1] == "usage"
                    and (-e[2] > hold_amounts.get(e[3], 0) or (e[4] or {}).get("settled_after_expiry"))
                )
            ]
            assert uncontrolled, f"available balance went to {available} through admitted requests only"
            self.summary.outcomes["available_below_zero:explained"] += 1
        if new_entries:
            self.last_entry_id = max(e[0] for e in new_entries)
        self.last_available = available
        self.summary.checks += 1

    # --- the end --------------------------------------------------------------------------------------

    def settle_all(self) -> None:
        """Deliver every outstanding event (in an order drawn from the seed), finish every batch,
        end every hold; then the books must match the model exactly, with nothing held."""
        from billing.models import BillingAccount, StripeEvent, TopUp
        from billing.services import holds_expire
        from inference.models import UsageRecord

        self.rng.shuffle(self.mailbox)
        while self.mailbox:
            self._deliver_payload(self.mailbox.pop())
            self.check("settle: deliver")
        for b in self.batches:
            if not b["checked"]:
                self._finish_batch(b)
        self._wait_pumps()
        holds_expire(now=timezone.now() + dt.timedelta(seconds=settings.BILLING_HOLD_TTL_SECONDS + 1))
        self.check("settle: all held money released")
        account = BillingAccount.objects.get(pk=self.account_id)
        assert account.held_units == 0, f"{account.held_units} still held after every hold ended"
        charged = (
            UsageRecord.objects.filter(organization_id=self.org_id).aggregate(s=Sum("cost_units"))["s"] or 0
        )
        self.summary.discrepancy_units += abs(account.balance_units - (self.credits - charged))
        assert not StripeEvent.objects.filter(status="failed").exists(), "a Stripe event failed to process"
        for t in self.topups:
            topup = TopUp.objects.get(pk=t.pk)
            assert topup.credited_at is not None, f"top-up {t.pk} never credited"
            assert (topup.credited_cents, topup.refunded_cents, topup.bonus_units) == (
                t.cents,
                t.applied_refunded,
                t.bonus,
            ), (topup.pk, topup.credited_cents, topup.refunded_cents, topup.bonus_units, t)
        self.summary.usage_records += UsageRecord.objects.filter(organization_id=self.org_id).count()
        self.summary.charged_units += charged
        self.summary.credited_units += self.credits


def worker_env() -> dict[str, str]:
    """The worker's settings for the simulation: fast lease/resume, the gateway's hold TTL."""
    return {
        "BILLING_HOLD_TTL_SECONDS": str(settings.BILLING_HOLD_TTL_SECONDS),
        "BATCH_CHUNK_SIZE": "4",
        "BATCH_LINE_CONCURRENCY": "4",
    }


def _diff(what: str, want: dict, got: dict) -> str:
    missing = {k: v for k, v in want.items() if got.get(k) != v}
    extra = {k: v for k, v in got.items() if k not in want}
    return f"{what}: expected-but-not-found {missing}, unexpected {extra}"
