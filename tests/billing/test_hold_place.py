"""hold_place: one conditional UPDATE; never admits more than the available balance."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from billing.errors import InsufficientBalance, InvalidAmount
from billing.models import BillingAccount, Hold, HoldStatus, LedgerEntry
from billing.services import hold_place

USD = 1_000_000_000


@pytest.mark.django_db
def test_hold_reserves_available_balance(org, grant):
    grant(org.organization_id, 10 * USD)
    hold_id = hold_place(org_id=org.organization_id, amount_units=3 * USD, reference="req-1")
    hold = Hold.objects.get(pk=hold_id)
    assert (hold.amount_units, hold.status, hold.reference) == (3 * USD, HoldStatus.OPEN, "req-1")
    account = BillingAccount.objects.get(organization_id=org.organization_id)
    assert (account.balance_units, account.held_units, account.available_units) == (
        10 * USD,
        3 * USD,
        7 * USD,
    )


@pytest.mark.django_db
def test_hold_exactly_the_available_balance_is_admitted_one_more_unit_is_not(org, grant):
    grant(org.organization_id, 5 * USD)
    hold_place(org_id=org.organization_id, amount_units=5 * USD, reference="all")
    with pytest.raises(InsufficientBalance) as exc:
        hold_place(org_id=org.organization_id, amount_units=1, reference="one more")
    assert exc.value.code == "insufficient_quota"
    assert exc.value.status == 402
    assert exc.value.extra == {"available_units": 0, "requested_units": 1}
    assert Hold.objects.count() == 1


@pytest.mark.django_db
def test_org_without_account_gets_one_lazily_and_is_refused(org):
    assert not BillingAccount.objects.exists()
    with pytest.raises(InsufficientBalance):
        hold_place(org_id=org.organization_id, amount_units=1, reference="r")
    assert BillingAccount.objects.get().organization_id == org.organization_id
    # A zero hold (e.g. a free model) is admitted even on an empty account.
    hold_place(org_id=org.organization_id, amount_units=0, reference="free")
    assert Hold.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [-1, 1.5, "10", True])
def test_amount_must_be_a_non_negative_int(org, amount):
    with pytest.raises(InvalidAmount):
        hold_place(org_id=org.organization_id, amount_units=amount, reference="r")


@pytest.mark.django_db
def test_hold_ttl_sets_expiry(org, grant, settings):
    grant(org.organization_id, USD)
    settings.BILLING_HOLD_TTL_SECONDS = 120
    default = Hold.objects.get(pk=hold_place(org_id=org.organization_id, amount_units=1, reference="a"))
    custom = Hold.objects.get(
        pk=hold_place(org_id=org.organization_id, amount_units=1, reference="b", ttl_seconds=5)
    )
    assert round((default.expires_at - default.created_at).total_seconds()) == 120
    assert round((custom.expires_at - custom.created_at).total_seconds()) == 5


@pytest.mark.django_db
@pytest.mark.postgres
def test_hold_place_is_one_statement_on_postgres(org, grant):
    grant(org.organization_id, USD)
    with CaptureQueriesContext(connection) as queries:
        hold_place(org_id=org.organization_id, amount_units=10, reference="r")
    statements = [
        q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))
    ]
    assert len(statements) == 1, statements
    assert "balance_units - held_units >=" in statements[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_fifty_concurrent_holds_never_exceed_the_balance(make_org):
    """50 threads, each with its own connection, race for holds that together ask for
    2.5× the balance: the admitted total never exceeds it."""
    from billing.services import credit_adjust

    membership = make_org("Race")
    org_id = membership.organization_id
    balance = 20 * USD
    credit_adjust(org_id=org_id, amount_units=balance, reason="race", acting_user=None)
    amount = USD  # 50 × $1 = $50 asked against $20
    barrier = threading.Barrier(50)
    admitted: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            try:
                hold_place(org_id=org_id, amount_units=amount, reference=f"w{i}")
                admitted.append(i)
            except InsufficientBalance:
                refused.append(i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(admitted) + len(refused) == 50
    assert len(admitted) * amount <= balance
    assert len(admitted) == balance // amount  # nothing refused while money was available
    account = BillingAccount.objects.get(organization_id=org_id)
    open_total = Hold.objects.filter(account=account, status=HoldStatus.OPEN).aggregate(
        s=Sum("amount_units")
    )["s"]
    assert account.held_units == open_total == len(admitted) * amount
    assert (
        account.balance_units
        == LedgerEntry.objects.filter(account=account).aggregate(s=Sum("amount_units"))["s"]
    )
