"""Daily usage roll-ups: what the dashboards read instead of millions of usage records.

One ``UsageDaily`` row per (organization, UTC day, model, API key); one ``ChannelDaily`` row
per (UTC day, channel, model) for the operator view. Rows are derived data: the rebuild
service (``inference.rollups``) recomputes a day from ``UsageRecord`` and may be run any
number of times. Data and constraints only.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

__all__ = ["ChannelDaily", "UsageDaily"]


class _Totals(models.Model):
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    image_input_tokens = models.BigIntegerField(default=0)
    image_output_tokens = models.BigIntegerField(default=0)
    images_generated = models.BigIntegerField(default=0)
    cost_units = models.BigIntegerField(default=0, help_text="Charged to tenants, nano-USD.")
    upstream_cost_units = models.BigIntegerField(default=0, help_text="Owed upstream, nano-USD.")
    latency_ms_sum = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        abstract = True


class UsageDaily(_Totals):
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    model = models.CharField(max_length=128)
    # The key's id, 0 when the record has none (a deleted key). A plain integer, so the
    # unique constraint holds on every database (NULLs are distinct in SQL).
    api_key_id = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "model"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "model", "api_key_id"], name="usage_daily_unique"
            )
        ]
        indexes = [models.Index(fields=["day"], name="usage_daily_day")]

    def __str__(self) -> str:
        return f"{self.organization_id} {self.day} {self.model} key={self.api_key_id}"


class ChannelDaily(_Totals):
    day = models.DateField()
    channel_id = models.BigIntegerField(default=0)  # 0: no channel (refused before routing)
    model = models.CharField(max_length=128)

    class Meta:
        ordering = ["-day", "channel_id", "model"]
        constraints = [
            models.UniqueConstraint(fields=["day", "channel_id", "model"], name="channel_daily_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} channel={self.channel_id} {self.model}"
