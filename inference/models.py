"""Usage records: one row per relayed request (charged or not)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class UsageStatus(models.TextChoices):
    OK = "ok"
    CLIENT_DISCONNECTED = "client_disconnected"
    UPSTREAM_ERROR = "upstream_error"
    REFUSED = "refused"  # refused before any upstream call (402, guard, limits) — not recorded by default


class UsageSource(models.TextChoices):
    UPSTREAM = "upstream"  # the upstream reported it
    ESTIMATED = "estimated"  # missing / zero / negative upstream usage: estimated by the gateway
    NONE = "none"  # nothing was produced, nothing charged


class UsageRecord(models.Model):
    # The tenant and key are plain ids with indexes (no FK constraint on the hot insert path
    # is needed for integrity here: rows are written only by the relay from an authenticated key).
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey("accounts.ApiKey", null=True, on_delete=models.SET_NULL, related_name="+")
    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    endpoint = models.CharField(max_length=48)  # chat.completions, messages, embeddings, images.generations…
    wire_format = models.CharField(max_length=16)  # openai | anthropic
    model = models.CharField(max_length=128)
    channel_id = models.BigIntegerField(null=True, blank=True)  # hidden from tenants
    stream = models.BooleanField(default=False)
    status = models.CharField(max_length=24, choices=UsageStatus.choices)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=64, blank=True)
    usage_source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.UPSTREAM)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    image_input_tokens = models.BigIntegerField(default=0)
    image_output_tokens = models.BigIntegerField(default=0)
    images_generated = models.IntegerField(default=0)
    cost_units = models.BigIntegerField(default=0, help_text="Charged to the organization, nano-USD.")
    upstream_cost_units = models.BigIntegerField(
        default=0, help_text="What the upstream charges us, nano-USD."
    )
    latency_ms = models.IntegerField(default=0)
    ttft_ms = models.IntegerField(null=True, blank=True)
    cost_detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="usage_org_time"),
            models.Index(fields=["organization", "api_key", "-created_at"], name="usage_org_key_time"),
            models.Index(fields=["organization", "model", "-created_at"], name="usage_org_model_time"),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model} {self.status} {self.cost_units}"

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cached_input_tokens
            + self.cache_write_tokens
            + self.image_input_tokens
            + self.image_output_tokens
        )


from .models_jobs import *  # noqa: E402,F403
from .models_rollups import *  # noqa: E402,F403
