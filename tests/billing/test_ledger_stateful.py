"""A Hypothesis state machine over the whole ledger: grants, holds, settles (below, at and
above the hold), releases, expiries, top-ups and refunds through the signed webhook (in any
order), and redemptions. After every step, every invariant is checked against an
independent model and by the audit."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from accounts.services import organization_create, user_create
from billing.errors import InsufficientBalance, RedemptionCodeInvalid
from billing.models import BillingAccount, Hold, HoldStatus, LedgerEntry, TopUp
from billing.selectors import ledger_audit
from billing.services import (
    billing_account_for_org,
    credit_adjust,
    hold_place,
    hold_release,
    hold_settle,
    holds_expire,
    redemption_batch_create,
    redemption_redeem,
)
from tests.billing.stripe_support import charge_refunded, checkout_completed, payment_intent_succeeded, sign

USD = 1_000_000_000
CENT = USD // 100
_ids = itertools.count()


def expected_bonus(cents: int, first: bool) -> int:
    """The seeded rules, restated independently: first top-up ≥ $5 → +$1;
    ≥ $100 → +5 %; ≥ $500 → +10 % (the best percentage only)."""
    units = cents * CENT
    percent = 10 if cents >= 50_000 else 5 if cents >= 10_000 else 0
    return units * percent // 100 + (USD if first and cents >= 500 else 0)


def deliver(payload: str) -> None:
    response = Client().post(
        "/stripe/webhook/", data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload)
    )
    assert response.status_code == 200, response.content


class LedgerMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    topups = Bundle("topups")

    def __init__(self) -> None:
        super().__init__()
        n = next(_ids)
        owner = user_create(email=f"machine{n}@example.com")
        self.org_id = organization_create(owner=owner, name=f"Machine {n}").pk
        self.account_id = billing_account_for_org(org_id=self.org_id).pk
        self.now = timezone.now()
        # The model.
        self.balance = 0
        self.held = 0
        self.open: dict[int, int] = {}  # hold → amount
        self.expires: dict[int, dt.datetime] = {}
        self.expired_uncharged: set[int] = set()
        self.charged_with: dict[int, str] = {}  # hold → idempotency key of its one usage entry
        self.ended: set[int] = set()
        self.topup_state: dict[int, dict] = {}
        self.any_credited = False

    # --- money in -------------------------------------------------------------------------

    @rule(units=st.integers(min_value=1, max_value=30 * USD))
    def grant(self, units):
        credit_adjust(org_id=self.org_id, amount_units=units, reason="machine", acting_user=None)
        self.balance += units

    @rule(units=st.integers(min_value=1, max_value=10 * USD))
    def redeem(self, units):
        _batch, [code] = redemption_batch_create(count=1, value_units=units)
        redemption_redeem(org_id=self.org_id, code=code)
        self.balance += units
        with pytest.raises(RedemptionCodeInvalid):
            redemption_redeem(org_id=self.org_id, code=code)

    @rule(target=topups, cents=st.sampled_from([500, 2_000, 10_000, 50_000]))
    def start_topup(self, cents):
        topup = TopUp.objects.create(account_id=self.account_id, amount_cents=cents)
        self.topup_state[topup.pk] = {"cents": cents, "credited": False, "bonus": 0, "seen": 0, "refunded": 0}
        return topup.pk

    @rule(topup=topups, via=st.sampled_from(["payment_intent", "checkout_session"]))
    def pay(self, topup, via):
        state = self.topup_state[topup]
        pi = f"pi_machine_{topup}"
        if via == "payment_intent":
            deliver(payment_intent_succeeded(topup_id=topup, pi=pi, cents=state["cents"]))
        else:
            deliver(checkout_completed(topup_id=topup, pi=pi, cents=state["cents"]))
        if state["credited"]:
            return
        state["credited"] = True
        state["bonus"] = expected_bonus(state["cents"], first=not self.any_credited)
        self.any_credited = True
        self.balance += state["cents"] * CENT + state["bonus"]
        self._apply_refund(state)

    @rule(topup=topups, fraction=st.sampled_from([1, 3, 5, 10]))
    def refund(self, topup, fraction):
        """Stripe reports the cumulative refunded amount; events may come before the
        payment's success and may be stale (a smaller cumulative amount)."""
        state = self.topup_state[topup]
        refunded = state["cents"] * fraction // 10
        deliver(charge_refunded(pi=f"pi_machine_{topup}", cents=state["cents"], refunded_cents=refunded))
        state["seen"] = max(state["seen"], refunded)
        if state["credited"]:
            self._apply_refund(state)

    def _apply_refund(self, state) -> None:
        target = min(state["seen"], state["cents"])
        if target <= state["refunded"]:
            return
        clawed_before = state["bonus"] * state["refunded"] // state["cents"]
        clawed_after = state["bonus"] * target // state["cents"]
        self.balance -= (target - state["refunded"]) * CENT + (clawed_after - clawed_before)
        state["refunded"] = target

    # --- holds ------------------------------------------------------------------------------

    @rule(target=holds, amount=st.integers(min_value=0, max_value=15 * USD), ttl=st.sampled_from([60, 3600]))
    def place(self, amount, ttl):
        available = self.balance - self.held
        try:
            hold_id = hold_place(org_id=self.org_id, amount_units=amount, reference="m", ttl_seconds=ttl)
        except InsufficientBalance:
            assert available < amount
            return multiple()
        assert available >= amount
        self.open[hold_id] = amount
        self.held += amount
        self.expires[hold_id] = Hold.objects.get(pk=hold_id).expires_at
        return hold_id

    @rule(hold=holds, ratio=st.sampled_from([0, 50, 100, 250]), key=st.sampled_from(["a", "b"]))
    def settle(self, hold, ratio, key):
        """ratio is the actual cost in % of the hold: below, at, above (the overrun)."""
        amount = Hold.objects.get(pk=hold).amount_units
        actual = amount * ratio // 100 + (7 if ratio > 100 else 0)
        idem = f"{hold}-{key}"
        entry = hold_settle(hold_id=hold, actual_units=actual, idempotency_key=idem)
        if hold in self.open:
            assert entry is not None
            assert entry.amount_units == -actual
            self.balance -= actual
            self.held -= self.open.pop(hold)
            self.ended.add(hold)
            self.charged_with[hold] = idem
        elif hold in self.expired_uncharged:
            assert entry is not None
            assert entry.amount_units == -actual
            self.balance -= actual
            self.expired_uncharged.discard(hold)
            self.charged_with[hold] = idem
        elif self.charged_with.get(hold) == idem:
            assert entry is not None  # idempotent repeat
            assert entry.hold_id == hold
        else:
            assert entry is None  # released, or already charged under another key

    @rule(hold=holds)
    def release(self, hold):
        released = hold_release(hold_id=hold)
        assert released == (hold in self.open)
        if released:
            self.held -= self.open.pop(hold)
            self.ended.add(hold)

    @rule(minutes=st.sampled_from([0, 2, 90]))
    def time_passes_and_holds_expire(self, minutes):
        self.now += dt.timedelta(minutes=minutes)
        due = {h for h in self.open if self.expires[h] <= self.now}
        assert holds_expire(now=self.now) >= len(due)  # other machines' holds may expire too
        for h in due:
            self.held -= self.open.pop(h)
            self.expired_uncharged.add(h)
            self.ended.add(h)

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def ledger_matches_model_and_invariants_hold(self):
        account = BillingAccount.objects.get(pk=self.account_id)
        assert account.balance_units == self.balance
        assert account.held_units == self.held
        entries = LedgerEntry.objects.filter(account_id=self.account_id)
        assert (entries.aggregate(s=Sum("amount_units"))["s"] or 0) == account.balance_units
        open_holds = Hold.objects.filter(account_id=self.account_id, status=HoldStatus.OPEN)
        assert (open_holds.aggregate(s=Sum("amount_units"))["s"] or 0) == account.held_units
        assert set(open_holds.values_list("pk", flat=True)) == set(self.open)
        last = entries.order_by("-pk").first()
        assert last is None or last.balance_after_units == account.balance_units
        # Holds are only admitted against available money: held never exceeds what a
        # non-negative balance allows, unless an overrun or a refund took it below.
        assert account.held_units >= 0
        assert ledger_audit() == []


@pytest.mark.django_db
def test_ledger_state_machine(stripe_webhook_settings):
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
