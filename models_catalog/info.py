"""Immutable snapshots the relay passes around: cheap, picklable, no database access.

``ModelInfo`` carries the model's whole price history, so costing a request at any
timestamp needs no query.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction

from django.utils import timezone

from .constants import Feature, Modality, ModelStatus
from .errors import PriceNotAvailable


@dataclass(frozen=True)
class PriceInfo:
    effective_from: dt.datetime
    input_per_mtok: int
    output_per_mtok: int
    cached_input_per_mtok: int | None = None
    cache_write_per_mtok: int | None = None
    image_input_per_mtok: int | None = None
    image_output_per_mtok: int | None = None
    # (("1024x1024:standard", 40_000_000), …) — a tuple so the snapshot stays hashable.
    per_image: tuple[tuple[str, int], ...] = ()
    batch_percent: int = 100

    def per_image_price(self, size: str, quality: str) -> int | None:
        return dict(self.per_image).get(f"{size}:{quality}")


@dataclass(frozen=True)
class TaskStrength:
    task: str
    score: int
    note: str = ""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    display_name: str
    vendor: str
    status: str
    replacement: str | None
    input_modalities: frozenset[str]
    output_modalities: frozenset[str]
    features: frozenset[str]
    tasks: tuple[TaskStrength, ...]
    context_window: int | None
    max_output_tokens: int | None
    prices: tuple[PriceInfo, ...]  # ascending effective_from
    provider_hint: str
    image_rule: str = "none"
    image_rule_params: tuple[tuple[str, int], ...] = ()
    image_output_tokens: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    aliases: tuple[str, ...] = ()
    description: str = ""
    created: int = 0  # unix seconds, for the OpenAI list shape
    sort_order: int = 100

    # --- capability questions ------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self.status == ModelStatus.ACTIVE

    @property
    def reads_images(self) -> bool:
        return Modality.IMAGE in self.input_modalities

    def has_feature(self, feature: str) -> bool:
        return feature in self.features

    def task_score(self, task: str) -> int:
        for strength in self.tasks:
            if strength.task == task:
                return strength.score
        return 0

    def task_note(self, task: str) -> str:
        for strength in self.tasks:
            if strength.task == task:
                return strength.note
        return ""

    @property
    def kind_phrase(self) -> str:
        """How the guard describes what this model does."""
        if Modality.TEXT not in self.output_modalities:
            if Modality.IMAGE in self.output_modalities:
                return "generates images"
            if Modality.EMBEDDING in self.output_modalities:
                return "produces embeddings"
        if self.reads_images and Modality.TEXT not in self.input_modalities:
            return "reads images and writes text"
        if self.reads_images:
            return "reads text and images and writes text"
        return "reads and writes text"

    @property
    def can_edit_images(self) -> bool:
        return Feature.IMAGE_EDITING in self.features

    # --- prices --------------------------------------------------------------------
    def price_at(self, at: dt.datetime | None = None) -> PriceInfo:
        at = at or timezone.now()
        chosen = None
        for price in self.prices:
            if price.effective_from <= at:
                chosen = price
            else:
                break
        if chosen is None:
            raise PriceNotAvailable(
                f"{self.id} has no price in effect at {at.isoformat()}.", extra={"model": self.id}
            )
        return chosen

    @property
    def current_price(self) -> PriceInfo | None:
        try:
            return self.price_at()
        except PriceNotAvailable:
            return None

    def rule_params(self) -> dict[str, int]:
        return dict(self.image_rule_params)

    def output_token_table(self) -> dict[str, dict[str, int]]:
        return {size: dict(qualities) for size, qualities in self.image_output_tokens}


@dataclass(frozen=True)
class ChannelInfo:
    id: int
    name: str
    provider_type: str
    base_url: str
    priority: int
    weight: int
    # model id → upstream model name (only where they differ)
    upstream_models: tuple[tuple[str, str], ...] = ()
    cost_multiplier: tuple[int, int] | None = None
    cooldown_until: dt.datetime | None = None
    consecutive_failures: int = 0
    api_key_hint: str = ""
    source: str = ""  # admin | env | simulator
    _ciphertext: str = field(default="", repr=False, compare=False)

    def api_key(self) -> str:
        """The decrypted upstream key. Call it right before the upstream request; never log it."""
        from .crypto import decrypt

        return decrypt(self._ciphertext) if self._ciphertext else ""

    def upstream_model(self, model_id: str) -> str:
        return dict(self.upstream_models).get(model_id, model_id)

    def in_cooldown(self, now: dt.datetime | None = None) -> bool:
        return bool(self.cooldown_until and self.cooldown_until > (now or timezone.now()))


@dataclass(frozen=True)
class RequestNeeds:
    """What a request needs from a model; the relay fills it from the parsed request."""

    input_modalities: frozenset[str] = frozenset({"text"})
    output: str = "text"  # "text" | "image" | "embedding"
    tools: bool = False
    json_mode: bool = False
    streaming: bool = False
    image_count: int = 0


@dataclass(frozen=True)
class Usage:
    """What a request consumed. Token counts are disjoint:

    ``input_tokens`` are uncached text input tokens (for OpenAI: ``prompt_tokens`` minus
    ``cached_tokens``; image tokens the upstream folds into the prompt may stay here —
    chat models price them as input). ``image_input_tokens`` are image tokens reported or
    estimated separately; ``image_output_tokens`` are generated-image tokens (gpt-image-1);
    ``images_generated`` are images billed per image (DALL·E 3) at ``image_size`` /
    ``image_quality``.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    image_input_tokens: int = 0
    image_output_tokens: int = 0
    images_generated: int = 0
    image_size: str = "1024x1024"
    image_quality: str = "standard"


@dataclass(frozen=True)
class CostLine:
    item: str  # input | cached_input | cache_write | image_input | output | image_output | images
    quantity: int
    unit: str  # "token" (price per 1M) or "image" (price per image)
    unit_price: int  # nano-USD per 1M tokens, or per image
    amount: Fraction  # exact nano-USD, before the single rounding

    def as_dict(self) -> dict:
        from .pricing import fraction_str, units_to_usd

        return {
            "item": self.item,
            "quantity": self.quantity,
            "unit": "1M tokens" if self.unit == "token" else "image",
            "unit_price_units": self.unit_price,
            "unit_price_usd": units_to_usd(self.unit_price),
            "amount_units": fraction_str(self.amount),
        }


@dataclass(frozen=True)
class CostBreakdown:
    model: str
    price_effective_from: dt.datetime
    lines: tuple[CostLine, ...]
    subtotal: Fraction  # Σ lines, exact
    batch_factor: Fraction  # 1, or batch_percent/100
    plan_multiplier: Fraction
    total_units: int  # ceil(subtotal × batch_factor × plan_multiplier): the one rounding

    def as_dict(self) -> dict:
        from .pricing import fraction_str, units_to_usd

        return {
            "model": self.model,
            "price_effective_from": self.price_effective_from.isoformat(),
            "lines": [line.as_dict() for line in self.lines],
            "subtotal_units": fraction_str(self.subtotal),
            "batch_factor": fraction_str(self.batch_factor),
            "plan_multiplier": fraction_str(self.plan_multiplier),
            "total_units": self.total_units,
            "total_usd": units_to_usd(self.total_units),
        }
