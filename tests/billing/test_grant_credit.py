"""credit_adjust and ``manage.py grant_credit``: operator credits with a reason and an actor."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from billing.errors import InvalidAmount
from billing.models import EntryKind, LedgerEntry
from billing.selectors import balance_for_org
from billing.services import credit_adjust
from config.errors import ValidationFailed

pytestmark = pytest.mark.django_db

USD = 1_000_000_000


def test_grant_credit_command(org, make_user, capsys):
    operator = make_user("ops@example.com")
    call_command(
        "grant_credit",
        "--org",
        org.organization.slug,
        "--usd",
        "12.5",
        "--reason",
        "goodwill",
        "--by",
        operator.email,
    )
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount_units, entry.description, entry.acting_user) == (
        EntryKind.ADJUSTMENT,
        12_500_000_000,
        "goodwill",
        operator,
    )
    assert "balance 12.50 USD" in capsys.readouterr().out


def test_debit_and_idempotency_key(org):
    call_command(
        "grant_credit",
        "--org",
        org.organization.slug,
        "--usd",
        "5",
        "--reason",
        "x",
        "--idempotency-key",
        "t1",
    )
    call_command(
        "grant_credit",
        "--org",
        org.organization.slug,
        "--usd",
        "5",
        "--reason",
        "x",
        "--idempotency-key",
        "t1",
    )
    call_command("grant_credit", "--org", org.organization.slug, "--usd", "-7", "--reason", "chargeback")
    assert balance_for_org(org_id=org.organization_id).balance_units == -2 * USD


@pytest.mark.parametrize(
    "args",
    [
        ["--org", "nope", "--usd", "1", "--reason", "r"],
        ["--usd", "abc", "--reason", "r"],
        ["--usd", "0.0000000001", "--reason", "r"],
        ["--usd", "0", "--reason", "r"],
        ["--usd", "1", "--reason", "  "],
        ["--usd", "1", "--reason", "r", "--by", "ghost@example.com"],
    ],
)
def test_bad_input_is_refused_and_writes_nothing(org, args):
    if "--org" not in args:
        args = ["--org", org.organization.slug, *args]
    with pytest.raises(CommandError):
        call_command("grant_credit", *args)
    assert not LedgerEntry.objects.exists()


def test_credit_adjust_validates(org):
    with pytest.raises(InvalidAmount):
        credit_adjust(org_id=org.organization_id, amount_units=1.0, reason="r", acting_user=None)
    with pytest.raises(ValidationFailed):
        credit_adjust(org_id=org.organization_id, amount_units=1, reason="", acting_user=None)
