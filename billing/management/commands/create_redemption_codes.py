"""``manage.py create_redemption_codes --count N --usd X [--expires-days D] [--note T]``
— generate a batch of single-use codes and print them (they are not stored in clear)."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.money import format_usd, usd_to_units
from billing.services import redemption_batch_create
from config.errors import ApplicationError


class Command(BaseCommand):
    help = "Generate a batch of single-use redemption codes and print them, one per line."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--usd", required=True, help="value of each code in USD")
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--note", default="")

    def handle(self, *args, count, usd, expires_days, note, **options):
        try:
            value = usd_to_units(usd)
            expires_at = timezone.now() + dt.timedelta(days=expires_days) if expires_days else None
            batch, codes = redemption_batch_create(
                count=count, value_units=value, expires_at=expires_at, note=note
            )
        except (ApplicationError, ValueError) as exc:
            raise CommandError(getattr(exc, "message", str(exc))) from None
        self.stderr.write(
            f"Batch #{batch.pk}: {count} code(s) of {format_usd(value)} USD"
            + (f", expiring {expires_at:%Y-%m-%d}" if expires_at else "")
        )
        for code in codes:
            self.stdout.write(code)
