"""Catalogue data: models, aliases, task strengths, prices, pricing plans, channels.

Data and constraints only. Every amount is an integer of nano-USD (1 unit = 1e-9 USD);
token prices are per million tokens, per-image prices per image.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .constants import ChannelSource, ImageRuleKind, ModelStatus, ProviderType, Task, Vendor


class AiModel(models.Model):
    model_id = models.CharField(_("model id"), max_length=128, unique=True, help_text=_("What clients send."))
    display_name = models.CharField(max_length=128)
    vendor = models.CharField(max_length=32, choices=Vendor.choices)
    description = models.TextField(blank=True)
    context_window = models.PositiveIntegerField(null=True, blank=True)
    max_output_tokens = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.ACTIVE)
    replacement = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    # Capabilities as data. input: what the model can *read* ("image" = image understanding);
    # output: "text" | "image" | "embedding"; features: see constants.Feature.
    input_modalities = models.JSONField(default=list)
    output_modalities = models.JSONField(default=list)
    features = models.JSONField(default=list, blank=True)
    # How an input image becomes tokens (constants.ImageRuleKind) and the rule's numbers.
    image_rule = models.CharField(max_length=32, choices=ImageRuleKind.choices, default=ImageRuleKind.NONE)
    image_rule_params = models.JSONField(default=dict, blank=True)
    # Image *output* tokens by size and quality, for vendors that bill generated images as
    # tokens (gpt-image-1): {"1024x1024": {"low": 272, "medium": 1056, "high": 4160}, …}
    image_output_tokens = models.JSONField(default=dict, blank=True)
    # Which provider type usually serves it (a hint for the relay and env channels).
    provider_hint = models.CharField(max_length=16, choices=ProviderType.choices, default=ProviderType.OPENAI)
    released_on = models.DateField(null=True, blank=True)
    sort_order = models.PositiveIntegerField(default=100)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "model_id"]
        verbose_name = _("model")

    def __str__(self) -> str:
        return self.model_id


class ModelAlias(models.Model):
    model = models.ForeignKey(AiModel, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=128, unique=True)

    class Meta:
        ordering = ["alias"]
        verbose_name_plural = _("model aliases")

    def __str__(self) -> str:
        return f"{self.alias} → {self.model_id}"


class TaskScore(models.Model):
    """How good a model is at a task, 0–100 (the seed's stars, refined by its scenario table)."""

    model = models.ForeignKey(AiModel, on_delete=models.CASCADE, related_name="task_scores")
    task = models.CharField(max_length=32, choices=Task.choices)
    score = models.PositiveSmallIntegerField()
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["model", "-score"]
        constraints = [
            models.UniqueConstraint(fields=["model", "task"], name="catalog_taskscore_unique"),
            models.CheckConstraint(condition=Q(score__lte=100), name="catalog_taskscore_max_100"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.task}={self.score}"


class Price(models.Model):
    """A model's list price from ``effective_from`` on. Rows are never edited: a new price is a new row."""

    model = models.ForeignKey(AiModel, on_delete=models.CASCADE, related_name="prices")
    effective_from = models.DateTimeField()
    input_per_mtok = models.BigIntegerField(default=0)
    output_per_mtok = models.BigIntegerField(default=0)
    # Null = no separate price; those tokens are charged at the input (or output) price.
    cached_input_per_mtok = models.BigIntegerField(null=True, blank=True)
    cache_write_per_mtok = models.BigIntegerField(null=True, blank=True)
    image_input_per_mtok = models.BigIntegerField(null=True, blank=True)
    image_output_per_mtok = models.BigIntegerField(null=True, blank=True)
    # Per generated image, keyed "<size>:<quality>" → units, e.g. {"1024x1024:standard": 40000000}.
    per_image = models.JSONField(default=dict, blank=True)
    # Percentage of the list price charged for batch jobs (OpenAI/Anthropic batch: 50).
    batch_percent = models.PositiveSmallIntegerField(default=100)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        get_latest_by = "effective_from"
        constraints = [
            models.UniqueConstraint(fields=["model", "effective_from"], name="catalog_price_unique_start"),
            models.CheckConstraint(
                condition=Q(input_per_mtok__gte=0)
                & Q(output_per_mtok__gte=0)
                & (Q(cached_input_per_mtok__isnull=True) | Q(cached_input_per_mtok__gte=0))
                & (Q(cache_write_per_mtok__isnull=True) | Q(cache_write_per_mtok__gte=0))
                & (Q(image_input_per_mtok__isnull=True) | Q(image_input_per_mtok__gte=0))
                & (Q(image_output_per_mtok__isnull=True) | Q(image_output_per_mtok__gte=0)),
                name="catalog_price_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(batch_percent__gte=1) & Q(batch_percent__lte=100), name="catalog_price_batch_pct"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} from {self.effective_from:%Y-%m-%d}"


class PricingPlan(models.Model):
    """A price multiplier for organizations (``accounts.Organization.pricing_plan`` holds the slug).

    The multiplier is an exact ratio ``numerator / denominator`` ("standard" = 1/1).
    """

    slug = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    multiplier_numerator = models.PositiveIntegerField(default=1)
    multiplier_denominator = models.PositiveIntegerField(default=1)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(multiplier_numerator__gte=1) & Q(multiplier_denominator__gte=1),
                name="catalog_plan_positive_ratio",
            )
        ]

    def __str__(self) -> str:
        return f"{self.slug} (×{self.multiplier_numerator}/{self.multiplier_denominator})"


class Channel(models.Model):
    """An upstream account: provider type + base URL + API key (encrypted at rest) + models."""

    name = models.CharField(max_length=100, unique=True)
    provider_type = models.CharField(max_length=16, choices=ProviderType.choices)
    base_url = models.URLField(max_length=300, blank=True)
    # Fernet token (settings.FIELD_ENCRYPTION_KEYS); never the plaintext.
    api_key_ciphertext = models.TextField(blank=True, editable=False)
    # "…ab12": the only part of the key ever displayed.
    api_key_hint = models.CharField(max_length=16, blank=True, editable=False)
    served_models = models.ManyToManyField(
        AiModel, through="ChannelModel", related_name="channels", blank=True
    )
    priority = models.IntegerField(default=0, help_text=_("Higher is tried first."))
    weight = models.PositiveIntegerField(default=1, help_text=_("Share of traffic within one priority."))
    enabled = models.BooleanField(default=True)
    source = models.CharField(max_length=16, choices=ChannelSource.choices, default=ChannelSource.ADMIN)
    # What this upstream account charges the operator, as a ratio of list price (margin reports).
    cost_multiplier_numerator = models.PositiveIntegerField(null=True, blank=True)
    cost_multiplier_denominator = models.PositiveIntegerField(null=True, blank=True)
    # Health, maintained by the relay.
    cooldown_until = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(cost_multiplier_numerator__isnull=True, cost_multiplier_denominator__isnull=True)
                    | Q(cost_multiplier_numerator__gte=0, cost_multiplier_denominator__gte=1)
                ),
                name="catalog_channel_cost_ratio",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Channel {self.name!r} {self.provider_type} key={self.api_key_hint or '-'}>"


class ChannelModel(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="channel_models")
    model = models.ForeignKey(AiModel, on_delete=models.CASCADE, related_name="channel_models")
    upstream_model = models.CharField(
        max_length=128, blank=True, help_text=_("Name sent upstream, if it differs from the model id.")
    )
    # Optional per-model cost prices (what the upstream charges), for margin reports.
    cost_input_per_mtok = models.BigIntegerField(null=True, blank=True)
    cost_output_per_mtok = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "model"], name="catalog_channel_model_unique")
        ]

    def __str__(self) -> str:
        return f"{self.channel_id}:{self.model_id}"
