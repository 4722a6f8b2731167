"""The fault test's database work, run in a subprocess against the private PostgreSQL.

``python -m tests.faults.remote setup`` — migrate, bootstrap (simulator channels), one
organization with credit and one API key with RPM/TPM limits; prints JSON.
``python -m tests.faults.remote check`` — the books after the load: billing_audit, the hold
expiry task, every usage record and usage ledger entry; prints JSON.

The test process itself stays on its own (pytest-django) database: the gateway under test
and these scripts share the private cluster that the test restarts.
"""

from __future__ import annotations

import io
import json
import sys
import time

CREDIT_UNITS = 500_000_000_000  # $500: never the limiting factor
RPM_LIMIT = 100_000  # high: the limiter runs (Redis, or its local fallback) but never refuses
TPM_LIMIT = 100_000_000


def setup() -> dict:
    from django.core.management import call_command

    from accounts.models import Membership
    from accounts.services import api_key_create, organization_create, user_create
    from billing.services import billing_account_for_org, credit_adjust

    call_command("migrate", verbosity=0, interactive=False)
    call_command("bootstrap", stdout=io.StringIO())
    owner = user_create(email="fault-owner@example.com", password="fault-test-password-1")
    org = organization_create(owner=owner, name="Fault Org")
    credit_adjust(org_id=org.pk, amount_units=CREDIT_UNITS, reason="fault test credit", acting_user=owner)
    membership = Membership.objects.get(organization=org, user=owner)
    _key, secret = api_key_create(actor=membership, name="load", rpm_limit=RPM_LIMIT, tpm_limit=TPM_LIMIT)
    return {
        "org_id": org.pk,
        "secret": secret,
        "balance_units": billing_account_for_org(org_id=org.pk).balance_units,
    }


def _audit() -> dict:
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    try:
        call_command("billing_audit", stdout=out)
    except CommandError as exc:
        return {"ok": False, "report": str(exc)}
    return {"ok": True, "report": out.getvalue().strip()}


def check(org_id: int, expiry_wait: float) -> dict:
    from django.db.models import Max, Sum
    from django.utils import timezone

    from billing.models import EntryKind, Hold, HoldStatus, LedgerEntry
    from billing.services import billing_account_for_org
    from billing.tasks import holds_expire_task
    from inference.models import UsageRecord

    audit_before = _audit()
    open_before = Hold.objects.filter(status=HoldStatus.OPEN).count()
    expired_by_task = 0
    if open_before:
        # Orphaned holds (the process lost track of them) are the expiry task's: wait until
        # they are due and run the real periodic task, as beat would.
        latest = Hold.objects.filter(status=HoldStatus.OPEN).aggregate(m=Max("expires_at"))["m"]
        wait = (latest - timezone.now()).total_seconds() + 0.5
        if 0 < wait <= expiry_wait:
            time.sleep(wait)
        expired_by_task = holds_expire_task.apply().get()
    records = [
        {
            "request_id": r.request_id,
            "status": r.status,
            "http_status": r.http_status,
            "cost_units": r.cost_units,
            "usage_source": r.usage_source,
            "error_code": r.error_code,
            "stream": r.stream,
        }
        for r in UsageRecord.objects.filter(organization_id=org_id).order_by("id")
    ]
    usage_entries = list(
        LedgerEntry.objects.filter(account__organization_id=org_id, kind=EntryKind.USAGE).values_list(
            "idempotency_key", "amount_units"
        )
    )
    holds = Hold.objects.filter(account__organization_id=org_id)
    account = billing_account_for_org(org_id=org_id)
    return {
        "audit_before_expiry": audit_before,
        "audit": _audit(),
        "open_holds_before_expiry": open_before,
        "holds_expired_by_task": expired_by_task,
        "open_holds": holds.filter(status=HoldStatus.OPEN).count(),
        "holds": holds.count(),
        "holds_by_status": {
            s: holds.filter(status=s).count()
            for s in (HoldStatus.SETTLED, HoldStatus.RELEASED, HoldStatus.EXPIRED)
        },
        "records": records,
        "usage_entries": usage_entries,
        "usage_entries_sum": -(
            LedgerEntry.objects.filter(account__organization_id=org_id, kind=EntryKind.USAGE).aggregate(
                s=Sum("amount_units")
            )["s"]
            or 0
        ),
        "balance_units": account.balance_units,
        "held_units": account.held_units,
    }


def main(argv: list[str]) -> None:
    import django

    django.setup()
    if argv[0] == "setup":
        result = setup()
    elif argv[0] == "check":
        result = check(int(argv[1]), float(argv[2]))
    else:
        raise SystemExit(f"unknown command {argv[0]!r}")
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
