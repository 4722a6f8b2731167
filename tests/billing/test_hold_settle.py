"""hold_settle: usage entry + hold ended in one transaction; idempotent; overrun charged."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.errors import HoldNotFound, IdempotencyConflict, InsufficientBalance
from billing.models import BillingAccount, EntryKind, Hold, HoldStatus, LedgerEntry
from billing.services import hold_place, hold_release, hold_settle, holds_expire

USD = 1_000_000_000


def _account(org):
    return BillingAccount.objects.get(organization_id=org.organization_id)


@pytest.mark.django_db
def test_settle_below_the_hold_charges_actual_and_releases_the_rest(org, grant):
    grant(org.organization_id, 10 * USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=2 * USD, reference="req-7")
    entry = hold_settle(
        hold_id=hold_id, actual_units=USD // 2, idempotency_key="req-7", description="gpt", metadata={"m": 1}
    )
    assert (entry.kind, entry.amount_units, entry.balance_after_units) == (
        EntryKind.USAGE,
        -USD // 2,
        9 * USD + USD // 2,
    )
    stored = LedgerEntry.objects.get(pk=entry.pk)
    assert (stored.reference, stored.hold_id, stored.metadata, stored.description) == (
        "req-7",
        hold_id,
        {"m": 1},
        "gpt",
    )
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.status, hold.settled_units) == (HoldStatus.SETTLED, USD // 2)
    assert hold.ended_at is not None
    account = _account(org)
    assert (account.balance_units, account.held_units) == (9 * USD + USD // 2, 0)


@pytest.mark.django_db
def test_settle_above_the_hold_charges_in_full_and_may_go_negative(org, grant):
    grant(org.organization_id, USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference="big")
    entry = hold_settle(hold_id=hold_id, actual_units=3 * USD, idempotency_key="big")
    assert entry.amount_units == -3 * USD
    account = _account(org)
    assert (account.balance_units, account.held_units) == (-2 * USD, 0)
    # Further requests are refused until topped up, even a free one needs available ≥ 0.
    with pytest.raises(InsufficientBalance):
        hold_place(org_id=org.organization_id, amount_units=1, reference="next")
    grant(org.organization_id, 3 * USD)
    hold_place(org_id=org.organization_id, amount_units=USD, reference="after top-up")


@pytest.mark.django_db
def test_settle_is_idempotent_on_the_key(org, grant):
    grant(org.organization_id, 10 * USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference="r")
    first = hold_settle(hold_id=hold_id, actual_units=100, idempotency_key="k1")
    again = hold_settle(hold_id=hold_id, actual_units=100, idempotency_key="k1")
    assert again.pk == first.pk
    assert LedgerEntry.objects.filter(kind=EntryKind.USAGE).count() == 1
    # The same hold under another key is not settled again.
    assert hold_settle(hold_id=hold_id, actual_units=100, idempotency_key="k2") is None
    assert _account(org).balance_units == 10 * USD - 100


@pytest.mark.django_db
def test_reusing_a_key_for_another_hold_is_a_conflict_and_changes_nothing(org, grant):
    grant(org.organization_id, 10 * USD)
    a = hold_place(org_id=org.organization_id, amount_units=USD, reference="a")
    b = hold_place(org_id=org.organization_id, amount_units=USD, reference="b")
    hold_settle(hold_id=a, actual_units=5, idempotency_key="same")
    with pytest.raises(IdempotencyConflict):
        hold_settle(hold_id=b, actual_units=5, idempotency_key="same")
    assert Hold.objects.get(pk=b).status == HoldStatus.OPEN
    assert _account(org).held_units == USD


@pytest.mark.django_db
def test_released_hold_is_never_charged(org, grant):
    grant(org.organization_id, USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference="r")
    assert hold_release(hold_id=hold_id) is True
    assert hold_release(hold_id=hold_id) is False
    assert hold_settle(hold_id=hold_id, actual_units=10, idempotency_key="late") is None
    account = _account(org)
    assert (account.balance_units, account.held_units) == (USD, 0)
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.RELEASED


@pytest.mark.django_db
def test_settled_hold_cannot_be_released(org, grant):
    grant(org.organization_id, USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference="r")
    hold_settle(hold_id=hold_id, actual_units=10, idempotency_key="k")
    assert hold_release(hold_id=hold_id) is False
    assert _account(org).held_units == 0


@pytest.mark.django_db
def test_expiry_gives_the_reservation_back_and_a_late_settle_charges_once(org, grant):
    grant(org.organization_id, USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference="slow", ttl_seconds=60)
    other = hold_place(org_id=org.organization_id, amount_units=0, reference="fresh", ttl_seconds=3600)
    hold = Hold.objects.get(pk=hold_id)
    assert holds_expire(now=hold.expires_at - dt.timedelta(seconds=1)) == 0
    assert holds_expire(now=hold.expires_at + dt.timedelta(seconds=1)) == 1
    assert holds_expire(now=hold.expires_at + dt.timedelta(seconds=1)) == 0
    assert Hold.objects.get(pk=other).status == HoldStatus.OPEN
    assert _account(org).held_units == 0
    # The request finished after all: what it used is charged, once, and held is untouched.
    entry = hold_settle(hold_id=hold_id, actual_units=300, idempotency_key="slow")
    assert entry.amount_units == -300
    assert entry.metadata["settled_after_expiry"] is True
    assert hold_settle(hold_id=hold_id, actual_units=300, idempotency_key="slow").pk == entry.pk
    assert hold_settle(hold_id=hold_id, actual_units=300, idempotency_key="other") is None
    account = _account(org)
    assert (account.balance_units, account.held_units) == (USD - 300, 0)
    assert Hold.objects.get(pk=hold_id).status == HoldStatus.EXPIRED


@pytest.mark.django_db
def test_unknown_hold(org):
    with pytest.raises(HoldNotFound):
        hold_settle(hold_id=999_999, actual_units=1, idempotency_key="nope")
    assert hold_release(hold_id=999_999) is False


@pytest.mark.django_db
@pytest.mark.postgres
def test_settle_is_one_statement_on_postgres(org, grant):
    grant(org.organization_id, USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=10, reference="r")
    with CaptureQueriesContext(connection) as queries:
        hold_settle(hold_id=hold_id, actual_units=7, idempotency_key="one")
    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(statements) == 1, statements
    with CaptureQueriesContext(connection) as queries:
        assert hold_release(hold_id=hold_place(org_id=org.organization_id, amount_units=1, reference="x"))
    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(statements) == 2  # place + release


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_concurrent_settle_release_and_expire_end_a_hold_once(make_org):
    import threading

    from billing.services import credit_adjust

    org_id = make_org("Once").organization_id
    credit_adjust(org_id=org_id, amount_units=10 * USD, reason="t", acting_user=None)
    hold_ids = [
        hold_place(org_id=org_id, amount_units=USD // 10, reference=f"h{i}", ttl_seconds=0) for i in range(20)
    ]
    barrier = threading.Barrier(3)

    def run(fn):
        def target():
            try:
                barrier.wait()
                for hid in hold_ids:
                    fn(hid)
            finally:
                connection.close()

        return threading.Thread(target=target)

    threads = [
        run(lambda hid: hold_settle(hold_id=hid, actual_units=USD // 20, idempotency_key=f"s{hid}")),
        run(lambda hid: hold_release(hold_id=hid)),
        run(lambda hid: holds_expire()),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not Hold.objects.filter(status=HoldStatus.OPEN).exists()
    assert BillingAccount.objects.get(organization_id=org_id).held_units == 0
    # Each hold charged at most once (the after-test audit also checks this).
    for hid in hold_ids:
        assert LedgerEntry.objects.filter(hold_id=hid).count() <= 1
