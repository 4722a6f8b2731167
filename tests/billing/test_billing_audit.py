"""billing_audit: exit 0 on a clean ledger, non-zero with a report on a corrupted one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from billing.models import BillingAccount, Hold, LedgerEntry
from billing.services import hold_place, hold_settle

USD = 1_000_000_000
ROOT = Path(settings.BASE_DIR)


def run_audit_process() -> subprocess.CompletedProcess:
    """``manage.py billing_audit`` in its own process, on this test database."""
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        url = f"sqlite:///{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    env.pop("MODELGATE_REQUIRE_SERVICES", None)
    return subprocess.run(
        [sys.executable, "manage.py", "billing_audit", "--skip-checks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def populate(org, grant):
    grant(org.organization_id, 10 * USD)
    for i in range(3):
        hold_id = hold_place(org_id=org.organization_id, amount_units=USD, reference=f"r{i}")
        hold_settle(hold_id=hold_id, actual_units=USD // 3, idempotency_key=f"k{i}")
    hold_place(org_id=org.organization_id, amount_units=USD, reference="open")


@pytest.mark.django_db
def test_clean_ledger_passes(org, grant, capsys):
    populate(org, grant)
    call_command("billing_audit")
    assert "billing audit OK: 1 accounts, 4 entries, 4 holds" in capsys.readouterr().out


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("corruption", "repair", "check"),
    [
        (
            "UPDATE billing_billingaccount SET balance_units = balance_units + 1",
            "UPDATE billing_billingaccount SET balance_units = balance_units - 1",
            "[balance]",
        ),
        (
            "UPDATE billing_billingaccount SET held_units = held_units + 5",
            "UPDATE billing_billingaccount SET held_units = held_units - 5",
            "[held]",
        ),
        (
            "UPDATE billing_ledgerentry SET amount_units = amount_units + 7 WHERE kind = 'usage'"
            " AND id = (SELECT MIN(id) FROM billing_ledgerentry WHERE kind = 'usage')",
            "UPDATE billing_ledgerentry SET amount_units = amount_units - 7 WHERE kind = 'usage'"
            " AND id = (SELECT MIN(id) FROM billing_ledgerentry WHERE kind = 'usage')",
            "[running_balance]",
        ),
        (
            "UPDATE billing_hold SET status = 'released' WHERE reference = 'r0'",
            "UPDATE billing_hold SET status = 'settled' WHERE reference = 'r0'",
            "[hold_charged]",
        ),
    ],
)
def test_corrupted_ledger_fails_with_a_report(org, grant, corruption, repair, check):
    populate(org, grant)
    with connection.cursor() as cursor:
        cursor.execute(corruption)
    with pytest.raises(CommandError) as exc:
        call_command("billing_audit")
    assert exc.value.returncode == 1
    assert "billing audit FAILED" in str(exc.value)
    assert check in str(exc.value)
    with connection.cursor() as cursor:  # so the after-test audit sees a clean ledger again
        cursor.execute(repair)
    call_command("billing_audit")


@pytest.mark.django_db
def test_a_hold_charged_twice_is_reported(org, grant):
    populate(org, grant)
    hold = Hold.objects.filter(status="settled").first()
    account = BillingAccount.objects.get()
    duplicate = LedgerEntry.objects.filter(hold=hold).get()
    duplicate.pk = None
    duplicate.idempotency_key = "forged-second-charge"
    duplicate.balance_after_units = account.balance_units + duplicate.amount_units
    duplicate.save()
    BillingAccount.objects.filter(pk=account.pk).update(balance_units=duplicate.balance_after_units)
    with pytest.raises(CommandError) as exc:
        call_command("billing_audit")
    assert "[hold_twice]" in str(exc.value)
    assert "[hold_settled]" in str(exc.value)
    LedgerEntry.objects.filter(pk=duplicate.pk).delete()  # a test may; the app never deletes
    BillingAccount.objects.filter(pk=account.pk).update(balance_units=account.balance_units)


@pytest.mark.django_db(transaction=True)
def test_the_command_exits_0_then_non_zero_on_a_corrupted_copy(org, grant):
    populate(org, grant)
    clean = run_audit_process()
    assert clean.returncode == 0, clean.stderr
    assert "billing audit OK" in clean.stdout
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_billingaccount SET balance_units = balance_units + 1")
    corrupted = run_audit_process()
    assert corrupted.returncode == 1
    assert "[balance]" in corrupted.stderr
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_billingaccount SET balance_units = balance_units - 1")
