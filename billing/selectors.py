"""Reads. Everything is looked up through the organization it belongs to."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, F, Max, Q, QuerySet, Sum, Window
from django.db.models.functions import Lag
from django.utils.translation import gettext as _

from config.errors import NotFound

from .bonus import BonusPreview, bonus_compute
from .models import (
    BillingAccount,
    BonusRule,
    EntryKind,
    Hold,
    HoldStatus,
    LedgerEntry,
    TopUp,
)
from .money import UNITS_PER_CENT


@dataclass(frozen=True)
class Balance:
    balance_units: int
    held_units: int

    @property
    def available_units(self) -> int:
        return self.balance_units - self.held_units


def balance_for_org(*, org_id: int) -> Balance:
    row = (
        BillingAccount.objects.filter(organization_id=org_id)
        .values_list("balance_units", "held_units")
        .first()
    )
    return Balance(*row) if row else Balance(0, 0)


def ledger_for_org(
    *,
    org_id: int,
    kinds: list[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> QuerySet[LedgerEntry]:
    """The statement, newest first. ``balance_after_units`` is the running balance."""
    qs = LedgerEntry.objects.filter(account__organization_id=org_id).order_by("-pk")
    if kinds:
        qs = qs.filter(kind__in=kinds)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def ledger_entry_get(*, org_id: int, entry_id: int) -> LedgerEntry:
    entry = LedgerEntry.objects.filter(account__organization_id=org_id, pk=entry_id).first()
    if entry is None:
        raise NotFound(_("No such ledger entry."))
    return entry


def topups_for_org(*, org_id: int) -> QuerySet[TopUp]:
    return TopUp.objects.filter(account__organization_id=org_id).order_by("-pk")


def topup_get(*, org_id: int, topup_id: int) -> TopUp:
    topup = topups_for_org(org_id=org_id).filter(pk=topup_id).first()
    if topup is None:
        raise NotFound(_("No such top-up."))
    return topup


def holds_open_for_org(*, org_id: int) -> QuerySet[Hold]:
    return Hold.objects.filter(account__organization_id=org_id, status=HoldStatus.OPEN).order_by("pk")


def bonus_preview(*, org_id: int, amount_units: int) -> BonusPreview:
    """The bonus a top-up of ``amount_units`` would get now (no writes).

    The bonus actually credited is computed again, with the same rules, when the
    payment is credited: a concurrent first top-up may take the first-top-up bonus."""
    is_first = not TopUp.objects.filter(account__organization_id=org_id, credited_at__isnull=False).exists()
    return bonus_compute(
        rules=BonusRule.objects.filter(active=True), amount_units=amount_units, is_first_topup=is_first
    )


# --- audit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditProblem:
    check: str
    detail: str
    account_id: int | None = None

    def __str__(self) -> str:
        where = f"account {self.account_id}: " if self.account_id is not None else ""
        return f"[{self.check}] {where}{self.detail}"


def ledger_audit() -> list[AuditProblem]:
    """Check the ledger invariants for every account; an empty list means all hold.

    1. balance == Σ entries, and the last entry's balance_after == balance;
    2. every entry's balance_after == the previous one's + its amount (running balance);
    3. held == Σ open holds, and held ≥ 0;
    4. no hold ended twice: at most one usage entry per hold, none for open or released
       holds, exactly one for settled holds;
    5. every top-up's entries match what it says was credited, refunded and clawed back.
    """
    problems: list[AuditProblem] = []
    sums = dict(
        LedgerEntry.objects.values("account_id")
        .annotate(s=Sum("amount_units"))
        .values_list("account_id", "s")
    )
    open_holds = dict(
        Hold.objects.filter(status=HoldStatus.OPEN)
        .values("account_id")
        .annotate(s=Sum("amount_units"))
        .values_list("account_id", "s")
    )
    last_ids = (
        LedgerEntry.objects.values("account_id").annotate(last=Max("id")).values_list("last", flat=True)
    )
    last_after = dict(
        LedgerEntry.objects.filter(pk__in=list(last_ids)).values_list("account_id", "balance_after_units")
    )
    for account_id, balance, held in BillingAccount.objects.order_by("pk").values_list(
        "pk", "balance_units", "held_units"
    ):
        total = sums.get(account_id) or 0
        if balance != total:
            problems.append(AuditProblem("balance", f"balance {balance} != Σ entries {total}", account_id))
        if account_id in last_after and last_after[account_id] != balance:
            problems.append(
                AuditProblem(
                    "balance_after",
                    f"last entry balance_after {last_after[account_id]} != {balance}",
                    account_id,
                )
            )
        holds_total = open_holds.get(account_id) or 0
        if held != holds_total:
            problems.append(AuditProblem("held", f"held {held} != Σ open holds {holds_total}", account_id))
    chain = (
        LedgerEntry.objects.annotate(
            prev_after=Window(
                Lag("balance_after_units"), partition_by=[F("account_id")], order_by=F("id").asc()
            )
        )
        .values_list("pk", "account_id", "amount_units", "balance_after_units", "prev_after")
        .order_by("pk")
    )
    for pk, account_id, amount, after, prev in chain.iterator():
        expected = (prev or 0) + amount
        if after != expected:
            problems.append(
                AuditProblem(
                    "running_balance", f"entry {pk}: balance_after {after} != {expected}", account_id
                )
            )
    for hold_id, n in (
        LedgerEntry.objects.filter(hold__isnull=False)
        .values("hold_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("hold_id", "n")
    ):
        problems.append(AuditProblem("hold_twice", f"hold {hold_id} charged {n} times"))
    for hold_id, n in (
        Hold.objects.filter(status=HoldStatus.SETTLED)
        .annotate(n=Count("entries"))
        .exclude(n=1)
        .values_list("pk", "n")
    ):
        problems.append(AuditProblem("hold_settled", f"settled hold {hold_id} has {n} usage entries, not 1"))
    for hold_id, status in (
        Hold.objects.filter(status__in=[HoldStatus.OPEN, HoldStatus.RELEASED], entries__isnull=False)
        .values_list("pk", "status")
        .distinct()
    ):
        problems.append(AuditProblem("hold_charged", f"{status} hold {hold_id} has a usage entry"))
    problems.extend(_audit_topups())
    return problems


def _audit_topups() -> list[AuditProblem]:
    problems = []
    per_topup: dict[int, dict[str, int]] = {}
    for topup_id, kind, total in (
        LedgerEntry.objects.filter(topup__isnull=False)
        .values("topup_id", "kind")
        .annotate(s=Sum("amount_units"))
        .values_list("topup_id", "kind", "s")
    ):
        per_topup.setdefault(topup_id, {})[kind] = total
    for topup in TopUp.objects.filter(Q(credited_at__isnull=False) | Q(pk__in=list(per_topup))).only(
        "pk", "account_id", "credited_cents", "refunded_cents", "bonus_units", "bonus_clawed_back_units"
    ):
        sums = per_topup.get(topup.pk, {})
        expected = {
            EntryKind.TOPUP: topup.credited_cents * UNITS_PER_CENT,
            EntryKind.BONUS: topup.bonus_units,
            EntryKind.REFUND: -topup.refunded_cents * UNITS_PER_CENT,
            EntryKind.BONUS_CLAWBACK: -topup.bonus_clawed_back_units,
        }
        for kind, want in expected.items():
            got = sums.get(kind, 0) or 0
            if got != want:
                problems.append(
                    AuditProblem(
                        "topup", f"top-up {topup.pk}: Σ {kind} entries {got} != {want}", topup.account_id
                    )
                )
    return problems
