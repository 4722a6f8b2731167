"""Every write to the ledger.

Hot path (called by the relay for every request): ``hold_place``, ``hold_settle``,
``hold_release``. On PostgreSQL each is one SQL statement (data-modifying CTEs); on
SQLite they are two or three statements in one ``BEGIN IMMEDIATE`` transaction, which
serializes writers. No check-then-act anywhere: every state change is a conditional
``UPDATE … WHERE`` whose row count says whether it happened.

Lock order, everywhere: stripe payment → top-up → hold → account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets
import uuid

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Membership, Role
from config.errors import ValidationFailed

from .error_codes import BillingErrorCode
from .errors import (
    HoldNotFound,
    IdempotencyConflict,
    InsufficientBalance,
    InvalidAmount,
    RedemptionCodeInvalid,
    RedemptionRateLimited,
)
from .models import (
    BillingAccount,
    EntryKind,
    Hold,
    HoldStatus,
    LedgerEntry,
    RedemptionBatch,
    RedemptionCode,
    SignupCreditClaim,
)
from .money import format_usd, usd_to_units

logger = logging.getLogger(__name__)

_ACCOUNT = BillingAccount._meta.db_table
_HOLD = Hold._meta.db_table
_ENTRY = LedgerEntry._meta.db_table


# --- helpers -----------------------------------------------------------------------------


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _dt(value: dt.datetime):
    """A datetime as the backend stores it (raw SQL bypasses the field's conversion)."""
    return connection.ops.adapt_datetimefield_value(value)


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _fetch_guarded(sql: str, params: list) -> list[tuple]:
    """Run one statement; inside a caller's transaction, in a savepoint so that a
    constraint violation does not poison that transaction."""
    if connection.in_atomic_block:
        with transaction.atomic():
            return _fetch(sql, params)
    return _fetch(sql, params)


def _require_units(value, *, name: str, allow_zero: bool = True) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount(_("%(name)s must be an integer of nano-USD.") % {"name": name})
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidAmount(_("%(name)s must be positive.") % {"name": name}, extra={name: value})
    return value


def _account_get_or_create(org_id: int) -> tuple[BillingAccount, bool]:
    account = BillingAccount.objects.filter(organization_id=org_id).first()
    if account is not None:
        return account, False
    return BillingAccount.objects.get_or_create(organization_id=org_id)


def billing_account_for_org(*, org_id: int) -> BillingAccount:
    """The organization's billing account, created on first use."""
    return _account_get_or_create(org_id)[0]


def _post_entry(
    *,
    account_id: int,
    kind: str,
    amount_units: int,
    idempotency_key: str,
    reference: str = "",
    description: str = "",
    metadata: dict | None = None,
    acting_user=None,
    hold_id: int | None = None,
    topup_id: int | None = None,
) -> tuple[LedgerEntry, bool]:
    """Append one entry and move the balance by its amount, atomically.

    Idempotent on ``idempotency_key``: an existing entry is returned with ``False``.
    A credit (positive amount) re-arms the low-balance alert.
    """
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing, False
    rearm = ", low_balance_alerted_at = NULL" if amount_units > 0 else ""
    try:
        with transaction.atomic():
            rows = _fetch(
                f"UPDATE {_ACCOUNT} SET balance_units = balance_units + %s{rearm} "  # noqa: S608
                "WHERE id = %s RETURNING balance_units",
                [amount_units, account_id],
            )
            entry = LedgerEntry.objects.create(
                account_id=account_id,
                kind=kind,
                amount_units=amount_units,
                balance_after_units=rows[0][0],
                idempotency_key=idempotency_key,
                reference=reference[:200],
                description=description[:255],
                metadata=metadata or {},
                acting_user=acting_user,
                hold_id=hold_id,
                topup_id=topup_id,
            )
    except IntegrityError:
        existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        if existing is None:
            raise
        return existing, False
    return entry, True


def _alert_if_low(*, account_id: int, balance: int, held: int, threshold, alerted_at) -> None:
    """Enqueue the low-balance e-mail after commit (never sent on the hold path itself)."""
    if threshold is None or alerted_at is not None or balance - held >= threshold:
        return
    from .tasks import low_balance_alert_task

    # robust: a broker that is down must not turn a committed settlement into an error (the
    # alert stays armed: ``low_balance_alerted_at`` is set by the task itself).
    transaction.on_commit(lambda: low_balance_alert_task.delay(account_id), robust=True)


def _alert_check(account_id: int) -> None:
    row = (
        BillingAccount.objects.filter(pk=account_id)
        .values_list("balance_units", "held_units", "low_balance_threshold_units", "low_balance_alerted_at")
        .first()
    )
    if row:
        _alert_if_low(account_id=account_id, balance=row[0], held=row[1], threshold=row[2], alerted_at=row[3])


# --- holds (the relay's hot path) -----------------------------------------------------------

_PG_HOLD_PLACE = f"""
WITH acc AS (
    UPDATE {_ACCOUNT} SET held_units = held_units + %s
    WHERE organization_id = %s AND balance_units - held_units >= %s
    RETURNING id
)
INSERT INTO {_HOLD} (account_id, amount_units, status, reference, created_at, expires_at)
SELECT acc.id, %s, 'open', %s, %s, %s FROM acc
RETURNING id
"""  # noqa: S608


def _hold_insert(org_id: int, amount: int, reference: str, now, expires) -> int | None:
    if _is_postgres():
        rows = _fetch(_PG_HOLD_PLACE, [amount, org_id, amount, amount, reference, _dt(now), _dt(expires)])
        return rows[0][0] if rows else None
    with transaction.atomic():
        rows = _fetch(
            f"UPDATE {_ACCOUNT} SET held_units = held_units + %s "  # noqa: S608
            "WHERE organization_id = %s AND balance_units - held_units >= %s RETURNING id",
            [amount, org_id, amount],
        )
        if not rows:
            return None
        rows = _fetch(
            f"INSERT INTO {_HOLD} (account_id, amount_units, status, reference, created_at, expires_at) "  # noqa: S608
            "VALUES (%s, %s, 'open', %s, %s, %s) RETURNING id",
            [rows[0][0], amount, reference, _dt(now), _dt(expires)],
        )
        return rows[0][0]


def hold_place(*, org_id: int, amount_units: int, reference: str, ttl_seconds: int | None = None) -> int:
    """Reserve ``amount_units`` of the organization's available balance; returns the hold id.

    One conditional UPDATE admits the hold only if ``balance − held ≥ amount``, so any
    number of concurrent callers can never reserve more than the balance.
    Raises ``InsufficientBalance`` (``insufficient_quota``, HTTP 402) otherwise.
    """
    _require_units(amount_units, name="amount_units")
    ttl = settings.BILLING_HOLD_TTL_SECONDS if ttl_seconds is None else int(ttl_seconds)
    now = timezone.now()
    expires = now + dt.timedelta(seconds=max(ttl, 0))
    reference = (reference or "")[:200]
    hold_id = _hold_insert(org_id, amount_units, reference, now, expires)
    if hold_id is not None:
        return hold_id
    # Error path only: the account may not exist yet (created lazily), then try once more.
    account, created = _account_get_or_create(org_id)
    if created:
        hold_id = _hold_insert(org_id, amount_units, reference, now, expires)
        if hold_id is not None:
            return hold_id
        account.refresh_from_db()
    raise InsufficientBalance(
        _("Insufficient balance: %(available)s USD available, %(requested)s USD needed. Top up to continue.")
        % {"available": format_usd(account.available_units), "requested": format_usd(amount_units)},
        extra={"available_units": account.available_units, "requested_units": amount_units},
    )


_PG_HOLD_SETTLE = f"""
WITH h AS (
    UPDATE {_HOLD} SET status = 'settled', ended_at = %s, settled_units = %s
    WHERE id = %s AND status = 'open'
      AND NOT EXISTS (SELECT 1 FROM {_ENTRY} WHERE idempotency_key = %s)
    RETURNING account_id, amount_units, reference
), a AS (
    UPDATE {_ACCOUNT} AS ba
    SET balance_units = ba.balance_units - %s, held_units = ba.held_units - h.amount_units
    FROM h WHERE ba.id = h.account_id
    RETURNING ba.id, ba.balance_units, ba.held_units, ba.low_balance_threshold_units,
              ba.low_balance_alerted_at
), e AS (
    INSERT INTO {_ENTRY} (account_id, kind, amount_units, balance_after_units, idempotency_key,
                          reference, description, metadata, hold_id, created_at)
    SELECT a.id, 'usage', %s, a.balance_units, %s, h.reference, %s, %s::jsonb, %s, %s FROM a, h
    RETURNING id, reference
)
SELECT e.id, e.reference, a.id, a.balance_units, a.held_units, a.low_balance_threshold_units,
       a.low_balance_alerted_at
FROM e, a
"""  # noqa: S608


def _settle_sqlite(hold_id, actual, key, description, metadata_json, now) -> list[tuple]:
    with transaction.atomic():
        held = _fetch(
            f"UPDATE {_HOLD} SET status = 'settled', ended_at = %s, settled_units = %s "  # noqa: S608
            f"WHERE id = %s AND status = 'open' AND NOT EXISTS "
            f"(SELECT 1 FROM {_ENTRY} WHERE idempotency_key = %s) "
            "RETURNING account_id, amount_units, reference",
            [_dt(now), actual, hold_id, key],
        )
        if not held:
            return []
        account_id, hold_amount, reference = held[0]
        acc = _fetch(
            f"UPDATE {_ACCOUNT} SET balance_units = balance_units - %s, held_units = held_units - %s "  # noqa: S608
            "WHERE id = %s RETURNING id, balance_units, held_units, low_balance_threshold_units, "
            "low_balance_alerted_at",
            [actual, hold_amount, account_id],
        )
        entry = _fetch(
            f"INSERT INTO {_ENTRY} (account_id, kind, amount_units, balance_after_units, "  # noqa: S608
            "idempotency_key, reference, description, metadata, hold_id, created_at) "
            "VALUES (%s, 'usage', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [account_id, -actual, acc[0][1], key, reference, description, metadata_json, hold_id, _dt(now)],
        )
        return [(entry[0][0], reference, *acc[0])]


def hold_settle(
    *,
    hold_id: int,
    actual_units: int,
    idempotency_key: str,
    description: str = "",
    metadata: dict | None = None,
    savepoint: bool = True,
) -> LedgerEntry | None:
    """Charge the actual cost of a held request and end the hold, in one transaction.

    ``actual_units`` may exceed the hold: it is charged in full (the balance may dip
    below zero by the overrun; further holds are refused until topped up). Idempotent
    on ``idempotency_key``: a repeat returns the entry already written. A hold that
    was already settled (under another key) or released is not charged again and
    ``None`` is returned. A hold that expired before its settlement is still charged
    (once), so usage that happened is never lost.

    Inside a caller's transaction the statement runs in a savepoint, so that a constraint
    violation leaves the caller's transaction usable; ``savepoint=False`` saves the two round
    trips when the caller would fail as a whole anyway (the relay's settlement).
    """
    _require_units(actual_units, name="actual_units")
    if not idempotency_key:
        raise ValidationFailed(_("An idempotency key is required."))
    idempotency_key = idempotency_key[:200]
    description = (description or "")[:255]
    metadata = metadata or {}
    metadata_json = json.dumps(metadata)
    now = timezone.now()
    if _is_postgres():
        rows = (_fetch_guarded if savepoint else _fetch)(
            _PG_HOLD_SETTLE,
            [
                _dt(now),
                actual_units,
                hold_id,
                idempotency_key,
                actual_units,
                -actual_units,
                idempotency_key,
                description,
                metadata_json,
                hold_id,
                _dt(now),
            ],
        )
    else:
        rows = _settle_sqlite(hold_id, actual_units, idempotency_key, description, metadata_json, now)
    if not rows:
        return _hold_settle_not_open(
            hold_id=hold_id,
            actual_units=actual_units,
            idempotency_key=idempotency_key,
            description=description,
            metadata=metadata,
        )
    entry_id, reference, account_id, balance, held, threshold, alerted_at = rows[0]
    _alert_if_low(
        account_id=account_id, balance=balance, held=held, threshold=threshold, alerted_at=alerted_at
    )
    entry = LedgerEntry(
        id=entry_id,
        account_id=account_id,
        kind=EntryKind.USAGE,
        amount_units=-actual_units,
        balance_after_units=balance,
        idempotency_key=idempotency_key,
        reference=reference,
        description=description,
        metadata=metadata,
        hold_id=hold_id,
        created_at=now,
    )
    entry._state.adding = False
    entry._state.db = connection.alias
    return entry


def _hold_settle_not_open(*, hold_id, actual_units, idempotency_key, description, metadata):
    existing = LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        if existing.hold_id != hold_id:
            raise IdempotencyConflict(
                _("This idempotency key was already used for another charge."),
                extra={"idempotency_key": idempotency_key},
            )
        return existing
    hold = Hold.objects.filter(pk=hold_id).first()
    if hold is None:
        raise HoldNotFound(_("No such hold."), extra={"hold_id": hold_id})
    if hold.status != HoldStatus.EXPIRED:
        return None  # settled under another key, or released: never charged twice
    # Expired before the request finished: charge what was used, once, without touching
    # ``held`` (the expiry already gave the reservation back).
    with transaction.atomic():
        claimed = Hold.objects.filter(
            pk=hold_id, status=HoldStatus.EXPIRED, settled_units__isnull=True
        ).update(settled_units=actual_units)
        if not claimed:
            return LedgerEntry.objects.filter(idempotency_key=idempotency_key).first()
        entry, _created = _post_entry(
            account_id=hold.account_id,
            kind=EntryKind.USAGE,
            amount_units=-actual_units,
            idempotency_key=idempotency_key,
            reference=hold.reference,
            description=description,
            metadata={**metadata, "settled_after_expiry": True},
            hold_id=hold_id,
        )
        _alert_check(hold.account_id)
    return entry


_PG_HOLD_END = f"""
WITH h AS (
    UPDATE {_HOLD} SET status = %s, ended_at = %s
    WHERE id = %s AND status = 'open' {{extra}}
    RETURNING account_id, amount_units
)
UPDATE {_ACCOUNT} AS ba SET held_units = ba.held_units - h.amount_units
FROM h WHERE ba.id = h.account_id
RETURNING ba.id
"""  # noqa: S608


def _hold_end(*, hold_id: int, status: str, now: dt.datetime, expired_by: dt.datetime | None = None) -> bool:
    """open → ``status`` (released/expired), giving the reservation back. At most once."""
    extra, extra_params = ("AND expires_at <= %s", [_dt(expired_by)]) if expired_by else ("", [])
    if _is_postgres():
        rows = _fetch(_PG_HOLD_END.format(extra=extra), [status, _dt(now), hold_id, *extra_params])
        return bool(rows)
    with transaction.atomic():
        rows = _fetch(
            f"UPDATE {_HOLD} SET status = %s, ended_at = %s WHERE id = %s AND status = 'open' {extra} "  # noqa: S608
            "RETURNING account_id, amount_units",
            [status, _dt(now), hold_id, *extra_params],
        )
        if not rows:
            return False
        _fetch(
            f"UPDATE {_ACCOUNT} SET held_units = held_units - %s WHERE id = %s RETURNING id",  # noqa: S608
            [rows[0][1], rows[0][0]],
        )
        return True


def hold_release(*, hold_id: int) -> bool:
    """Give a hold back uncharged (the upstream failed before any output).

    Returns False when the hold had already ended (released, settled or expired)."""
    return _hold_end(hold_id=hold_id, status=HoldStatus.RELEASED, now=timezone.now())


def holds_expire(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    """Expire open holds whose ``expires_at`` has passed; returns how many it ended."""
    now = now or timezone.now()
    ids = list(
        Hold.objects.filter(status=HoldStatus.OPEN, expires_at__lte=now)
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(_hold_end(hold_id=pk, status=HoldStatus.EXPIRED, now=now, expired_by=now) for pk in ids)


# --- operator credit ---------------------------------------------------------------------


@transaction.atomic
def credit_adjust(
    *, org_id: int, amount_units: int, reason: str, acting_user, idempotency_key: str | None = None
) -> LedgerEntry:
    """An operator's credit (positive) or debit (negative), with a reason and who did it.

    A debit may take the balance below zero (the operator decides)."""
    if isinstance(amount_units, bool) or not isinstance(amount_units, int) or amount_units == 0:
        raise InvalidAmount(_("The adjustment must be a non-zero integer of nano-USD."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(_("A reason is required."), extra={"field": "reason"})
    account = billing_account_for_org(org_id=org_id)
    entry, _created = _post_entry(
        account_id=account.pk,
        kind=EntryKind.ADJUSTMENT,
        amount_units=amount_units,
        idempotency_key=idempotency_key or f"adjust:{uuid.uuid4().hex}",
        reference=f"operator:{getattr(acting_user, 'pk', None) or '-'}",
        description=reason,
        metadata={"reason": reason},
        acting_user=acting_user,
    )
    if amount_units < 0:
        _alert_check(account.pk)
    return entry


# --- signup credit -----------------------------------------------------------------------


def email_normalize(email: str) -> str:
    """One key per mailbox: lower case, no ``+tag``; Gmail ignores dots and has two domains."""
    local, _sep, domain = (email or "").strip().lower().rpartition("@")
    local = local.split("+", 1)[0]
    if domain in ("gmail.com", "googlemail.com"):
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


@transaction.atomic
def signup_credit_grant(*, user, email: str) -> LedgerEntry | None:
    """Grant the signup credit to the organization ``user`` owns (their first), once per
    verified e-mail address ever and once per user. Returns None when not granted."""
    amount = usd_to_units(settings.SIGNUP_CREDIT_USD)
    if amount <= 0:
        return None
    normalized = email_normalize(email)
    membership = (
        Membership.objects.filter(user=user, role=Role.OWNER).order_by("organization_id", "pk").first()
    )
    if membership is None:
        return None
    if SignupCreditClaim.objects.filter(Q(email=normalized) | Q(user=user)).exists():
        return None
    account = billing_account_for_org(org_id=membership.organization_id)
    try:
        with transaction.atomic():
            SignupCreditClaim.objects.create(
                email=normalized, user=user, account=account, amount_units=amount
            )
    except IntegrityError:  # a concurrent confirmation of the same address or user won
        return None
    entry, _created = _post_entry(
        account_id=account.pk,
        kind=EntryKind.SIGNUP_CREDIT,
        amount_units=amount,
        idempotency_key=f"signup:{normalized}",
        reference=f"user:{user.pk}",
        description=_("Signup credit"),
        acting_user=user,
    )
    return entry


# --- redemption codes --------------------------------------------------------------------

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
CODE_LENGTH = 16  # 80 bits
REDEEM_FAILURES_ALLOWED = 10
REDEEM_FAILURE_WINDOW = 600


def _code_body(code: str) -> str:
    body = "".join(ch for ch in (code or "").upper() if ch.isalnum())
    if body.startswith("MG") and len(body) == CODE_LENGTH + 2:
        body = body[2:]
    return body


def _code_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _code_generate() -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _i in range(CODE_LENGTH))
    return "MG-" + "-".join(body[i : i + 4] for i in range(0, CODE_LENGTH, 4))


@transaction.atomic
def redemption_batch_create(
    *,
    count: int,
    value_units: int,
    expires_at: dt.datetime | None = None,
    note: str = "",
    acting_user=None,
) -> tuple[RedemptionBatch, list[str]]:
    """Generate ``count`` single-use codes worth ``value_units`` each. The codes are
    returned once; only their hashes are stored."""
    if not 1 <= int(count) <= 10_000:
        raise ValidationFailed(_("A batch holds 1 to 10000 codes."), extra={"field": "count"})
    _require_units(value_units, name="value_units", allow_zero=False)
    batch = RedemptionBatch.objects.create(
        value_units=value_units, count=count, expires_at=expires_at, note=note[:200], created_by=acting_user
    )
    codes = [_code_generate() for _i in range(count)]
    RedemptionCode.objects.bulk_create(
        [RedemptionCode(batch=batch, code_hash=_code_hash(_code_body(c)), prefix=c[:7]) for c in codes]
    )
    return batch, codes


def _redeem_failed(org_id: int) -> None:
    key = f"billing:redeem-failures:{org_id}"
    cache.add(key, 0, timeout=REDEEM_FAILURE_WINDOW)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=REDEEM_FAILURE_WINDOW)


def redemption_redeem(*, org_id: int, code: str, acting_user=None) -> LedgerEntry:
    """Credit the organization with a code's value. Single use: of any number of
    concurrent redemptions of one code, exactly one credits."""
    key = f"billing:redeem-failures:{org_id}"
    if (cache.get(key) or 0) >= REDEEM_FAILURES_ALLOWED:
        raise RedemptionRateLimited(
            _("Too many invalid codes. Try again in a few minutes."),
            headers={"Retry-After": str(REDEEM_FAILURE_WINDOW)},
        )
    try:
        return _redeem(org_id=org_id, code=code, acting_user=acting_user)
    except RedemptionCodeInvalid as exc:
        if exc.code == BillingErrorCode.REDEMPTION_CODE_INVALID:  # only guesses count
            _redeem_failed(org_id)
        raise


@transaction.atomic(durable=True)
def _redeem(*, org_id: int, code: str, acting_user) -> LedgerEntry:
    body = _code_body(code)
    found = (
        RedemptionCode.objects.select_related("batch").filter(code_hash=_code_hash(body)).first()
        if len(body) == CODE_LENGTH
        else None
    )
    if found is None:
        raise RedemptionCodeInvalid(_("This code is not valid."))
    now = timezone.now()
    if found.batch.expires_at is not None and found.batch.expires_at <= now:
        raise RedemptionCodeInvalid(
            _("This code has expired."), code=BillingErrorCode.REDEMPTION_CODE_EXPIRED, status=410
        )
    account = billing_account_for_org(org_id=org_id)
    # The conditional UPDATE on the code's own row is the single-use guarantee.
    claimed = RedemptionCode.objects.filter(pk=found.pk, redeemed_at__isnull=True).update(
        redeemed_at=now, redeemed_account=account, redeemed_by=acting_user
    )
    if not claimed:
        raise RedemptionCodeInvalid(
            _("This code has already been redeemed."), code=BillingErrorCode.REDEMPTION_CODE_USED, status=409
        )
    entry, _created = _post_entry(
        account_id=account.pk,
        kind=EntryKind.REDEMPTION,
        amount_units=found.batch.value_units,
        idempotency_key=f"redeem:{found.pk}",
        reference=f"code:{found.prefix}",
        description=_("Redemption code %(prefix)s…") % {"prefix": found.prefix},
        metadata={"batch_id": found.batch_id},
        acting_user=acting_user,
    )
    return entry


# --- settings and low-balance alerts -------------------------------------------------------


@transaction.atomic
def billing_settings_update(*, org_id: int, low_balance_threshold_units: int | None) -> BillingAccount:
    """Set (or clear, with None) the low-balance threshold; re-arms the alert."""
    if low_balance_threshold_units is not None:
        _require_units(low_balance_threshold_units, name="low_balance_threshold_units")
    account = billing_account_for_org(org_id=org_id)
    BillingAccount.objects.filter(pk=account.pk).update(
        low_balance_threshold_units=low_balance_threshold_units, low_balance_alerted_at=None
    )
    account.refresh_from_db()
    if low_balance_threshold_units is not None:
        _alert_check(account.pk)
    return account


def low_balance_alert_send(*, account_id: int) -> bool:
    """E-mail owners and admins once when the available balance is below the threshold.

    Claimed with a conditional UPDATE (so concurrent tasks send one mail); if sending
    fails the claim is undone and the error raised, so the task can retry."""
    now = timezone.now()
    claimed = BillingAccount.objects.filter(
        pk=account_id,
        low_balance_alerted_at__isnull=True,
        low_balance_threshold_units__isnull=False,
        low_balance_threshold_units__gt=F("balance_units") - F("held_units"),
    ).update(low_balance_alerted_at=now)
    if not claimed:
        return False
    account = BillingAccount.objects.select_related("organization").get(pk=account_id)
    recipients = list(
        Membership.objects.filter(organization_id=account.organization_id, role__in=[Role.OWNER, Role.ADMIN])
        .order_by("pk")
        .values_list("user__email", flat=True)
    )
    org = account.organization
    subject = _("Low balance on %(org)s") % {"org": org.name}
    body = _(
        "The available balance of %(org)s is %(available)s USD, below your alert threshold of "
        "%(threshold)s USD. Requests are refused once it reaches zero.\n\nTop up: %(url)s\n"
    ) % {
        "org": org.name,
        "available": format_usd(account.available_units),
        "threshold": format_usd(account.low_balance_threshold_units or 0),
        "url": f"{settings.MODELGATE_PUBLIC_URL.rstrip('/')}/billing/",
    }
    try:
        if recipients:
            send_mail(subject, body, None, recipients)
    except Exception:
        BillingAccount.objects.filter(pk=account_id, low_balance_alerted_at=now).update(
            low_balance_alerted_at=None
        )
        raise
    return True
