"""``manage.py grant_credit --org SLUG --usd AMOUNT --reason TEXT`` — an operator credit
(or, with a negative amount, a debit), written to the ledger with its reason."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from billing.money import format_usd, usd_to_units
from billing.services import credit_adjust
from config.errors import ApplicationError


class Command(BaseCommand):
    help = "Credit (or debit, with a negative amount) an organization's balance, with a reason."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--usd", required=True, help="amount in USD, e.g. 10 or -2.50")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--by", default=None, help="e-mail of the operator (audit trail)")
        parser.add_argument("--idempotency-key", default=None, help="makes a repeated run a no-op")

    def handle(self, *args, org, usd, reason, by, idempotency_key, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug {org!r}.")
        try:
            amount = usd_to_units(usd)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        acting_user = None
        if by:
            acting_user = get_user_model().objects.filter(email__iexact=by).first()
            if acting_user is None:
                raise CommandError(f"No user {by!r}.")
        try:
            entry = credit_adjust(
                org_id=organization.pk,
                amount_units=amount,
                reason=reason,
                acting_user=acting_user,
                idempotency_key=idempotency_key,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Entry #{entry.pk}: {format_usd(entry.amount_units)} USD to {organization.slug}; "
            f"balance {format_usd(entry.balance_after_units)} USD."
        )
