"""Render ``ModelInfo`` for the public catalogue: the OpenAI model-list entry and page rows."""

from __future__ import annotations

from fractions import Fraction

from .constants import Modality, Task
from .info import ModelInfo
from .pricing import MTOK, image_output_tokens_for, units_to_usd
from .selectors import served_by_simulator

_PRICE_FIELDS = (
    ("input", "input_per_mtok"),
    ("output", "output_per_mtok"),
    ("cached_input", "cached_input_per_mtok"),
    ("cache_write", "cache_write_per_mtok"),
    ("image_input", "image_input_per_mtok"),
    ("image_output", "image_output_per_mtok"),
)


def per_image_prices(info: ModelInfo) -> dict[str, int]:
    """ "size:quality" → nano-USD per generated image: listed, or derived from output tokens
    (ceil(tokens × image output price / 10⁶))."""
    price = info.current_price
    if price is None:
        return {}
    if price.per_image:
        return dict(price.per_image)
    out = {}
    rate = price.image_output_per_mtok if price.image_output_per_mtok is not None else price.output_per_mtok
    for size, qualities in info.output_token_table().items():
        for quality in qualities:
            tokens = image_output_tokens_for(model=info, size=size, quality=quality) or 0
            exact = Fraction(tokens * rate, MTOK)
            out[f"{size}:{quality}"] = -(-exact.numerator // exact.denominator)
    return out


def pricing_dict(info: ModelInfo) -> dict | None:
    price = info.current_price
    if price is None:
        return None
    usd_fields = {}
    units = {}
    for name, attr in _PRICE_FIELDS:
        value = getattr(price, attr)
        usd_fields[name] = None if value is None else units_to_usd(value)
        units[name] = value
    images = per_image_prices(info)
    return {
        "currency": "USD",
        "unit": "per 1M tokens",
        **usd_fields,
        "per_image": {key: units_to_usd(v) for key, v in images.items()} or None,
        "per_image_basis": ("listed" if price.per_image else "output tokens") if images else None,
        "batch_discount_percent": 100 - price.batch_percent,
        "effective_from": price.effective_from.isoformat(),
        "units": {**units, "per_image": images or None},
    }


def capabilities(info: ModelInfo) -> list[str]:
    caps = set(info.features)
    if info.reads_images:
        caps.add("vision")
    if Modality.IMAGE in info.output_modalities:
        caps.add("image_generation")
    if Modality.EMBEDDING in info.output_modalities:
        caps.add("embeddings")
    return sorted(caps)


def openai_model_entry(info: ModelInfo) -> dict:
    return {
        "id": info.id,
        "object": "model",
        "created": info.created,
        "owned_by": info.vendor,
        "display_name": info.display_name,
        "description": info.description,
        "status": info.status,
        "replacement": info.replacement,
        "aliases": list(info.aliases),
        "input_modalities": sorted(info.input_modalities),
        "output_modalities": sorted(info.output_modalities),
        "capabilities": capabilities(info),
        "tasks": {t.task: t.score for t in info.tasks},
        "context_length": info.context_window,
        "max_output_tokens": info.max_output_tokens,
        "pricing": pricing_dict(info),
        # Demo mode: answered by the bundled upstream simulator, not a real provider.
        "simulated": served_by_simulator(info.id),
    }


def best_for(info: ModelInfo, limit: int = 3, min_score: int = 80) -> list[str]:
    labels = dict(Task.choices)
    return [str(labels.get(t.task, t.task)) for t in info.tasks if t.score >= min_score][:limit]
