"""Cost arithmetic: usage → nano-USD, and each vendor's image-token rule.

Money is ``int`` nano-USD (1 unit = 1e-9 USD). Token prices are per million tokens.
Intermediate amounts are exact ``Fraction``s; a request is rounded **once**, up:

    total = ceil( Σ tokensᵢ × priceᵢ / 10⁶  [+ Σ imagesⱼ × per_imageⱼ]
                  × batch_percent/100 (batch only) × plan multiplier )

Nothing here touches the database: a ``ModelInfo`` snapshot carries everything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from math import isqrt

from .constants import ImageRuleKind, Modality
from .errors import InvalidUsage, PriceNotAvailable
from .info import CostBreakdown, CostLine, ModelInfo, RequestNeeds, Usage

MTOK = 1_000_000
UNITS_PER_USD = 1_000_000_000


# --- money formatting ----------------------------------------------------------------


def usd(amount: str) -> int:
    """``usd("2.50") == 2_500_000_000`` — exact; refuses sub-nano amounts."""
    value = Decimal(amount) * UNITS_PER_USD
    if value != value.to_integral_value():
        raise ValueError(f"{amount} USD is not a whole number of nano-USD")
    return int(value)


def units_to_usd(units: int) -> str:
    """Exact decimal USD string with at least two decimals: 2_500_000_000 → "2.50"."""
    text = format(Decimal(units).scaleb(-9).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def fraction_str(value: Fraction) -> str:
    """A Fraction as an exact decimal when it has one (denominator 2ᵃ5ᵇ), else "n/d"."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    text = format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def as_multiplier(value) -> Fraction:
    """Accept ``Fraction``, ``int``, ``Decimal``, ``(num, den)`` or ``"num/den"`` / ``"1.25"``."""
    if isinstance(value, Fraction):
        result = value
    elif isinstance(value, tuple):
        result = Fraction(int(value[0]), int(value[1]))
    elif isinstance(value, int | Decimal | str):
        result = Fraction(value)
    else:
        raise InvalidUsage("A plan multiplier must be an exact number, not a float.")
    if result <= 0:
        raise InvalidUsage("A plan multiplier must be positive.")
    return result


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)


# --- image input tokens --------------------------------------------------------------


def _fit_long_edge(width: int, height: int, limit: int) -> tuple[int, int]:
    longest = max(width, height)
    if longest <= limit:
        return width, height
    return max(1, width * limit // longest), max(1, height * limit // longest)


def _openai_tiles(w: int, h: int, detail: str, p: dict) -> int:
    if detail == "low":
        return p["low"]
    # 1. fit inside max_dim × max_dim; 2. shrink so the shortest side is short_side
    #    (never enlarge); 3. count tile_size squares; 4. base + tile × tiles.
    w, h = _fit_long_edge(w, h, p.get("max_dim", 2048))
    short_side = p.get("short_side", 768)
    shortest = min(w, h)
    if shortest > short_side:
        w, h = max(1, w * short_side // shortest), max(1, h * short_side // shortest)
    size = p.get("tile_size", 512)
    tiles = -(-w // size) * -(-h // size)
    return p["base"] + p["tile"] * tiles


def _anthropic_pixels(w: int, h: int, p: dict) -> int:
    # Resize (keeping the aspect ratio) so the long edge ≤ max_long_edge and the area
    # ≤ max_pixels (≈1,600 tokens), then tokens = ceil(w × h / 750).
    w, h = _fit_long_edge(w, h, p.get("max_long_edge", 1568))
    max_pixels = p.get("max_pixels", 1_200_000)
    if w * h > max_pixels:
        # floor(w·√(P/(w·h))) == isqrt(w·P // h): exact integer arithmetic, no float.
        w, h = max(1, isqrt(w * max_pixels // h)), max(1, isqrt(h * max_pixels // w))
    divisor = p.get("divisor", 750)
    return -(-(w * h) // divisor)


def _gemini_tiles(w: int, h: int, p: dict) -> int:
    small = p.get("small", 384)
    if w <= small and h <= small:
        return p.get("small_tokens", 258)
    w, h = _fit_long_edge(w, h, p.get("max_long_edge", 3072))
    size = p.get("tile_size", 768)
    return -(-w // size) * -(-h // size) * p.get("tile_tokens", 258)


def _qwen_patches(w: int, h: int, p: dict) -> int:
    patch = p.get("patch", 28)
    max_tokens = p.get("max_tokens", 1280)
    w_bar = max(patch, (w + patch // 2) // patch * patch)
    h_bar = max(patch, (h + patch // 2) // patch * patch)
    if (w_bar // patch) * (h_bar // patch) > max_tokens:
        area = max_tokens * patch * patch
        w_bar = max(patch, isqrt(w * area // h) // patch * patch)
        h_bar = max(patch, isqrt(h * area // w) // patch * patch)
    tokens = (w_bar // patch) * (h_bar // patch)
    return max(p.get("min_tokens", 4), tokens) + p.get("extra", 2)


def _generic_tiles(w: int, h: int, p: dict) -> int:
    size = p.get("tile_size", 448)
    tiles = min(-(-w // size) * -(-h // size), p.get("max_tiles", 6))
    return p.get("base", 0) + tiles * p.get("tile_tokens", 256)


def image_input_tokens(*, model: ModelInfo, width: int, height: int, detail: str = "auto") -> int:
    """Tokens one input image of ``width``×``height`` pixels costs on ``model``.

    ``detail`` matters for OpenAI's rule only: "low" is a flat count; "auto" is costed as
    "high" (an upper bound: the upstream may choose low).
    """
    if width <= 0 or height <= 0:
        raise InvalidUsage("Image width and height must be positive.")
    if detail not in ("auto", "low", "high"):
        raise InvalidUsage("detail must be one of auto, low, high.")
    params = model.rule_params()
    rule = model.image_rule
    if rule == ImageRuleKind.OPENAI_TILES:
        return _openai_tiles(width, height, detail, params)
    if rule == ImageRuleKind.ANTHROPIC_PIXELS:
        return _anthropic_pixels(width, height, params)
    if rule == ImageRuleKind.GEMINI_TILES:
        return _gemini_tiles(width, height, params)
    if rule == ImageRuleKind.QWEN_PATCHES:
        return _qwen_patches(width, height, params)
    if rule == ImageRuleKind.TILES:
        return _generic_tiles(width, height, params)
    if rule == ImageRuleKind.FIXED:
        return params["tokens"]
    raise InvalidUsage(f"{model.id} does not take image input.", extra={"model": model.id})


def max_image_input_tokens(model: ModelInfo) -> int:
    """The most one image can cost on ``model`` — for holds when the gateway lacks the bytes."""
    p = model.rule_params()
    rule = model.image_rule
    if rule == ImageRuleKind.OPENAI_TILES:
        size = p.get("tile_size", 512)
        tiles = -(-p.get("short_side", 768) // size) * -(-p.get("max_dim", 2048) // size)
        return max(p["low"], p["base"] + p["tile"] * tiles)
    if rule == ImageRuleKind.ANTHROPIC_PIXELS:
        long_edge = p.get("max_long_edge", 1568)
        area = min(p.get("max_pixels", 1_200_000), long_edge * long_edge)
        return -(-area // p.get("divisor", 750))
    if rule == ImageRuleKind.GEMINI_TILES:
        per_side = -(-p.get("max_long_edge", 3072) // p.get("tile_size", 768))
        return max(p.get("small_tokens", 258), per_side * per_side * p.get("tile_tokens", 258))
    if rule == ImageRuleKind.QWEN_PATCHES:
        return p.get("max_tokens", 1280) + p.get("extra", 2)
    if rule == ImageRuleKind.TILES:
        return p.get("base", 0) + p.get("max_tiles", 6) * p.get("tile_tokens", 256)
    if rule == ImageRuleKind.FIXED:
        return p["tokens"]
    return 0


# --- image output ----------------------------------------------------------------------


def image_output_tokens_for(*, model: ModelInfo, size: str, quality: str) -> int | None:
    """Tokens one generated image costs, for vendors that bill images as output tokens.

    ``size="auto"`` / ``quality="auto"`` are costed at the largest entry (a safe hold).
    """
    table = model.output_token_table()
    if not table:
        return None
    sizes = list(table.values()) if size == "auto" else [table.get(size, {})]
    counts = [
        max(qualities.values(), default=0) if quality == "auto" else qualities.get(quality, 0)
        for qualities in sizes
    ]
    best = max(counts, default=0)
    return best or None


# --- the cost of a request --------------------------------------------------------------


def _validate(usage: Usage) -> None:
    for name in (
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "cache_write_tokens",
        "image_input_tokens",
        "image_output_tokens",
        "images_generated",
    ):
        value = getattr(usage, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidUsage(f"{name} must be a non-negative integer.", extra={"field": name})


def cost_compute(
    *,
    model: ModelInfo,
    usage: Usage,
    plan_multiplier=Fraction(1),
    batch: bool = False,
    at: dt.datetime | None = None,
) -> CostBreakdown:
    """Itemised cost of ``usage`` on ``model`` at the price in effect at ``at`` (default: now)."""
    _validate(usage)
    multiplier = as_multiplier(plan_multiplier)
    price = model.price_at(at)
    lines: list[CostLine] = []

    def per_token(item: str, quantity: int, unit_price: int) -> None:
        if quantity:
            lines.append(CostLine(item, quantity, "token", unit_price, Fraction(quantity * unit_price, MTOK)))

    def fallback(value: int | None, default: int) -> int:
        return default if value is None else value

    per_token("input", usage.input_tokens, price.input_per_mtok)
    per_token(
        "cached_input", usage.cached_input_tokens, fallback(price.cached_input_per_mtok, price.input_per_mtok)
    )
    per_token(
        "cache_write", usage.cache_write_tokens, fallback(price.cache_write_per_mtok, price.input_per_mtok)
    )
    per_token(
        "image_input", usage.image_input_tokens, fallback(price.image_input_per_mtok, price.input_per_mtok)
    )
    per_token("output", usage.output_tokens, price.output_per_mtok)

    image_output_tokens = usage.image_output_tokens
    if usage.images_generated:
        per_image = price.per_image_price(usage.image_size, usage.image_quality)
        if per_image is not None:
            n = usage.images_generated
            lines.append(CostLine("images", n, "image", per_image, Fraction(n * per_image)))
        elif not image_output_tokens:
            per = image_output_tokens_for(model=model, size=usage.image_size, quality=usage.image_quality)
            if per is None:
                raise InvalidUsage(
                    f"{model.id} has no price for a {usage.image_size} {usage.image_quality} image.",
                    extra={"model": model.id, "size": usage.image_size, "quality": usage.image_quality},
                )
            image_output_tokens = per * usage.images_generated
    per_token(
        "image_output", image_output_tokens, fallback(price.image_output_per_mtok, price.output_per_mtok)
    )

    subtotal = sum((line.amount for line in lines), Fraction(0))
    batch_factor = Fraction(price.batch_percent, 100) if batch else Fraction(1)
    total = _ceil(subtotal * batch_factor * multiplier)
    return CostBreakdown(
        model=model.id,
        price_effective_from=price.effective_from,
        lines=tuple(lines),
        subtotal=subtotal,
        batch_factor=batch_factor,
        plan_multiplier=multiplier,
        total_units=total,
    )


# --- estimates ---------------------------------------------------------------------------


def text_tokens_estimate(text: str) -> int:
    """A rough token count for text: ~4 ASCII characters per token, 1 per other character
    (CJK runs about one token per character). Real usage comes from the upstream."""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return -(-ascii_chars // 4) + (len(text) - ascii_chars)


@dataclass(frozen=True)
class ImageSpec:
    width: int
    height: int
    detail: str = "auto"


@dataclass(frozen=True)
class Estimate:
    usage: Usage
    breakdown: CostBreakdown
    image_tokens: tuple[int, ...]
    text_tokens_estimated: bool


def cost_estimate(
    *,
    model: ModelInfo,
    input_tokens: int | None = None,
    text: str | None = None,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    images: tuple[ImageSpec, ...] = (),
    output_tokens: int = 0,
    images_to_generate: int = 0,
    image_size: str = "1024x1024",
    image_quality: str = "standard",
    batch: bool = False,
    plan_multiplier=Fraction(1),
) -> Estimate:
    """What a request would cost: token counts given or estimated from ``text``, images by size."""
    estimated = input_tokens is None and bool(text)
    tokens = input_tokens if input_tokens is not None else text_tokens_estimate(text or "")
    image_tokens = tuple(
        image_input_tokens(model=model, width=img.width, height=img.height, detail=img.detail)
        for img in images
    )
    usage = Usage(
        input_tokens=tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        image_input_tokens=sum(image_tokens),
        images_generated=images_to_generate,
        image_size=image_size,
        image_quality=image_quality,
    )
    breakdown = cost_compute(model=model, usage=usage, plan_multiplier=plan_multiplier, batch=batch)
    return Estimate(
        usage=usage, breakdown=breakdown, image_tokens=image_tokens, text_tokens_estimated=estimated
    )


# --- ranking by price ----------------------------------------------------------------------

# "Cheapest" means cheapest for a reference request of the kind asked for:
REFERENCE_INPUT_TOKENS = 1000
REFERENCE_OUTPUT_TOKENS = 500
REFERENCE_PROMPT_TOKENS = 100  # an image-generation prompt
REFERENCE_IMAGE = (1024, 1024)


def reference_quality(model: ModelInfo) -> str:
    price = model.current_price
    if price and price.per_image_price("1024x1024", "standard") is not None:
        return "standard"
    return "medium"


def reference_usage(model: ModelInfo, needs: RequestNeeds) -> Usage:
    reads_image = Modality.IMAGE in needs.input_modalities
    images = max(needs.image_count, 1) if reads_image else 0
    image_tokens = 0
    if images and model.image_rule != ImageRuleKind.NONE:
        image_tokens = images * image_input_tokens(
            model=model, width=REFERENCE_IMAGE[0], height=REFERENCE_IMAGE[1], detail="high"
        )
    if needs.output == Modality.IMAGE:
        return Usage(
            input_tokens=REFERENCE_PROMPT_TOKENS,
            image_input_tokens=image_tokens,
            images_generated=1,
            image_size="1024x1024",
            image_quality=reference_quality(model),
        )
    if needs.output == Modality.EMBEDDING:
        return Usage(input_tokens=REFERENCE_INPUT_TOKENS)
    return Usage(
        input_tokens=REFERENCE_INPUT_TOKENS,
        output_tokens=REFERENCE_OUTPUT_TOKENS,
        image_input_tokens=image_tokens,
    )


def reference_cost(model: ModelInfo, needs: RequestNeeds) -> int | None:
    """Nano-USD of the reference request on ``model`` (None when it cannot be priced)."""
    try:
        return cost_compute(model=model, usage=reference_usage(model, needs)).total_units
    except (PriceNotAvailable, InvalidUsage):
        return None
