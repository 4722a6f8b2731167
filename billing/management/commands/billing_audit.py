"""``manage.py billing_audit`` — verify every ledger invariant; exit 1 with a report on a mismatch."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from billing.models import BillingAccount, Hold, LedgerEntry
from billing.selectors import ledger_audit


class Command(BaseCommand):
    help = (
        "For every billing account: balance == Σ entries (and the running balance), held == Σ open "
        "holds, no hold ended twice, top-ups match their entries. Exits non-zero on any mismatch."
    )

    def handle(self, *args, **options):
        problems = ledger_audit()
        summary = (
            f"{BillingAccount.objects.count()} accounts, {LedgerEntry.objects.count()} entries, "
            f"{Hold.objects.count()} holds checked"
        )
        if problems:
            report = "\n".join(f"  {p}" for p in problems)
            raise CommandError(
                f"billing audit FAILED: {len(problems)} problem(s); {summary}\n{report}", returncode=1
            )
        self.stdout.write(self.style.SUCCESS(f"billing audit OK: {summary}"))
