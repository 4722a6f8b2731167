"""The seed catalogue (version 1): the seed article's models, list prices and task strengths.

Plain data plus one idempotent loader that works with real or historical (migration)
model classes. Prices are nano-USD: per 1M tokens, or per image. Figures not verified
against the vendor's own page are listed in docs/catalogue.md.

Task scores (0–100) come from the seed article: its star ratings (★★★★★ → ~90–95,
★★★★ → ~80–88) refined so its scenario table (best / alternative / economical) is what
the recommender answers. Models the article doesn't rate are placed by their tier.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

SEED_PRICES_FROM = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def usd(amount: str) -> int:
    return int(Decimal(amount) * 1_000_000_000)


TEXT = "text"
IMAGE = "image"
EMBEDDING = "embedding"
CHAT_FEATURES = ["streaming", "tools", "json_mode", "system_prompt"]

OPENAI_4O_TILES = {"low": 85, "base": 85, "tile": 170, "max_dim": 2048, "short_side": 768, "tile_size": 512}
# gpt-4o-mini bills ~33× the tokens per image so an image costs the same dollars as on gpt-4o.
OPENAI_4O_MINI_TILES = {
    "low": 2833,
    "base": 2833,
    "tile": 5667,
    "max_dim": 2048,
    "short_side": 768,
    "tile_size": 512,
}
# gpt-image-1 input images (edits): 65 base + 129 per 512px tile, shortest side 512.
GPT_IMAGE_1_INPUT_TILES = {
    "low": 65,
    "base": 65,
    "tile": 129,
    "max_dim": 2048,
    "short_side": 512,
    "tile_size": 512,
}
ANTHROPIC_PIXELS = {"max_long_edge": 1568, "max_pixels": 1_200_000, "divisor": 750}
GEMINI_TILES = {
    "small": 384,
    "small_tokens": 258,
    "tile_size": 768,
    "tile_tokens": 258,
    "max_long_edge": 3072,
}
QWEN_PATCHES = {"patch": 28, "max_tokens": 1280, "min_tokens": 4, "extra": 2}
XAI_TILES = {"tile_size": 448, "tile_tokens": 256, "base": 256, "max_tiles": 6}

GPT_IMAGE_1_OUTPUT_TOKENS = {
    "1024x1024": {"low": 272, "medium": 1056, "high": 4160},
    "1024x1536": {"low": 408, "medium": 1584, "high": 6240},
    "1536x1024": {"low": 408, "medium": 1584, "high": 6240},
}


def _scores(**scores: int | tuple[int, str]) -> dict[str, tuple[int, str]]:
    return {task: (value if isinstance(value, tuple) else (value, "")) for task, value in scores.items()}


SEED_MODELS: list[dict] = [
    {
        "model_id": "gpt-4o",
        "display_name": "GPT-4o",
        "vendor": "openai",
        "description": "OpenAI's multimodal flagship: accurate image understanding, good Chinese.",
        "context_window": 128_000,
        "max_output_tokens": 16_384,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": CHAT_FEATURES,
        "image_rule": "openai_tiles",
        "image_rule_params": OPENAI_4O_TILES,
        "provider_hint": "openai",
        "released_on": dt.date(2024, 5, 13),
        "sort_order": 10,
        "aliases": ["gpt-4o-2024-08-06"],
        "price": {"input": "2.50", "output": "10", "cached_input": "1.25", "batch_percent": 50},
        "tasks": _scores(
            chat=90,
            general_vision=(95, "accurate; scenes, objects, text extraction; good Chinese"),
            ocr_document=(88, "reliable text extraction"),
            charts=85,
            art_analysis=88,
            spatial_reasoning=80,
            chinese_documents=(85, "good Chinese"),
            medical_imaging=(92, "careful professional image reading"),
            traffic_realtime=85,
            product_recognition=(95, "objects and text on packaging"),
            multilingual=85,
        ),
    },
    {
        "model_id": "gpt-4o-mini",
        "display_name": "GPT-4o mini",
        "vendor": "openai",
        "description": "Small, cheap GPT-4o for text; images cost about as much as on GPT-4o.",
        "context_window": 128_000,
        "max_output_tokens": 16_384,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": CHAT_FEATURES,
        "image_rule": "openai_tiles",
        "image_rule_params": OPENAI_4O_MINI_TILES,
        "provider_hint": "openai",
        "released_on": dt.date(2024, 7, 18),
        "sort_order": 11,
        "aliases": ["gpt-4o-mini-2024-07-18"],
        "price": {"input": "0.15", "output": "0.60", "cached_input": "0.075", "batch_percent": 50},
        "tasks": _scores(
            chat=80,
            general_vision=75,
            ocr_document=72,
            charts=72,
            art_analysis=70,
            spatial_reasoning=65,
            chinese_documents=70,
            medical_imaging=65,
            traffic_realtime=65,
            product_recognition=75,
            multilingual=78,
        ),
    },
    {
        "model_id": "gpt-image-1",
        "display_name": "GPT Image 1",
        "vendor": "openai",
        "description": (
            "Generates images from text and edits images by regenerating them. It does not "
            "understand images: no recognition, detection, OCR or captioning."
        ),
        "context_window": None,
        "max_output_tokens": None,
        "input_modalities": [TEXT],
        "output_modalities": [IMAGE],
        "features": ["image_editing"],
        "image_rule": "openai_tiles",
        "image_rule_params": GPT_IMAGE_1_INPUT_TILES,
        "image_output_tokens": GPT_IMAGE_1_OUTPUT_TOKENS,
        "provider_hint": "openai",
        "released_on": dt.date(2025, 4, 23),
        "sort_order": 20,
        # The seed article's "gpt-4o-image" is the same generator under a reseller's name.
        "aliases": ["gpt-4o-image"],
        "price": {
            "input": "5",
            "output": "40",
            "cached_input": "1.25",
            "image_input": "10",
            "image_output": "40",
            "batch_percent": 100,
        },
        "tasks": _scores(
            image_generation=(95, "strong prompt following, text in images"),
            image_editing=(95, "edits by regenerating from a reference image"),
        ),
    },
    {
        "model_id": "dall-e-3",
        "display_name": "DALL·E 3",
        "vendor": "openai",
        "description": "Text-to-image generation, priced per image by size and quality. Cannot read images.",
        "context_window": None,
        "max_output_tokens": None,
        "input_modalities": [TEXT],
        "output_modalities": [IMAGE],
        "features": [],
        "image_rule": "none",
        "provider_hint": "openai",
        "released_on": dt.date(2023, 11, 6),
        "sort_order": 21,
        "price": {
            "input": "0",
            "output": "0",
            "per_image": {
                "1024x1024:standard": "0.04",
                "1024x1792:standard": "0.08",
                "1792x1024:standard": "0.08",
                "1024x1024:hd": "0.08",
                "1024x1792:hd": "0.12",
                "1792x1024:hd": "0.12",
            },
            "batch_percent": 100,
        },
        "tasks": _scores(image_generation=(85, "per-image pricing, no editing")),
    },
    {
        "model_id": "text-embedding-3-small",
        "display_name": "text-embedding-3-small",
        "vendor": "openai",
        "description": "Small, cheap text embeddings (1536 dimensions).",
        "context_window": 8191,
        "max_output_tokens": None,
        "input_modalities": [TEXT],
        "output_modalities": [EMBEDDING],
        "features": [],
        "image_rule": "none",
        "provider_hint": "openai",
        "released_on": dt.date(2024, 1, 25),
        "sort_order": 30,
        "price": {"input": "0.02", "output": "0", "batch_percent": 50},
        "tasks": _scores(embeddings=80),
    },
    {
        "model_id": "claude-sonnet-4-5",
        "display_name": "Claude Sonnet 4.5",
        "vendor": "anthropic",
        "description": "Anthropic's current Sonnet: deep image analysis of complex scenes and artwork.",
        "context_window": 200_000,
        "max_output_tokens": 64_000,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": ["streaming", "tools", "system_prompt"],
        "image_rule": "anthropic_pixels",
        "image_rule_params": ANTHROPIC_PIXELS,
        "provider_hint": "anthropic",
        "released_on": dt.date(2025, 9, 29),
        "sort_order": 40,
        "aliases": ["claude-sonnet-4-5-20250929"],
        "price": {
            "input": "3",
            "output": "15",
            "cached_input": "0.30",
            "cache_write": "3.75",
            "batch_percent": 50,
        },
        "tasks": _scores(
            chat=95,
            general_vision=(92, "detailed, deep analysis of complex scenes"),
            ocr_document=85,
            charts=85,
            art_analysis=(96, "artwork analysis: style, composition, context"),
            spatial_reasoning=80,
            chinese_documents=75,
            medical_imaging=(90, "careful, detailed professional reading"),
            traffic_realtime=75,
            product_recognition=85,
            multilingual=80,
        ),
    },
    {
        "model_id": "claude-3-5-sonnet-20241022",
        "display_name": "Claude 3.5 Sonnet (Oct 2024)",
        "vendor": "anthropic",
        "description": "The seed article's Claude. Deprecated by Anthropic; Claude Sonnet 4.5 replaces it.",
        "context_window": 200_000,
        "max_output_tokens": 8192,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": ["streaming", "tools", "system_prompt"],
        "image_rule": "anthropic_pixels",
        "image_rule_params": ANTHROPIC_PIXELS,
        "provider_hint": "anthropic",
        "released_on": dt.date(2024, 10, 22),
        "sort_order": 42,
        "status": "deprecated",
        "replacement": "claude-sonnet-4-5",
        "aliases": ["claude-3-5-sonnet-latest", "claude-3-5-sonnet"],
        "price": {
            "input": "3",
            "output": "15",
            "cached_input": "0.30",
            "cache_write": "3.75",
            "batch_percent": 50,
        },
        "tasks": _scores(
            chat=88,
            general_vision=(90, "detailed, deep analysis"),
            ocr_document=82,
            charts=82,
            art_analysis=(95, "artwork analysis"),
            spatial_reasoning=76,
            chinese_documents=72,
            medical_imaging=88,
            traffic_realtime=72,
            product_recognition=82,
            multilingual=78,
        ),
    },
    {
        "model_id": "claude-haiku-4-5",
        "display_name": "Claude Haiku 4.5",
        "vendor": "anthropic",
        "description": "Anthropic's fast, cheaper model with vision.",
        "context_window": 200_000,
        "max_output_tokens": 64_000,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": ["streaming", "tools", "system_prompt"],
        "image_rule": "anthropic_pixels",
        "image_rule_params": ANTHROPIC_PIXELS,
        "provider_hint": "anthropic",
        "released_on": dt.date(2025, 10, 15),
        "sort_order": 41,
        "aliases": ["claude-haiku-4-5-20251001"],
        "price": {
            "input": "1",
            "output": "5",
            "cached_input": "0.10",
            "cache_write": "1.25",
            "batch_percent": 50,
        },
        "tasks": _scores(
            chat=85,
            general_vision=80,
            ocr_document=75,
            charts=75,
            art_analysis=80,
            spatial_reasoning=70,
            chinese_documents=65,
            medical_imaging=75,
            traffic_realtime=65,
            product_recognition=75,
            multilingual=75,
        ),
    },
    {
        "model_id": "gemini-2.5-pro",
        "display_name": "Gemini 2.5 Pro",
        "vendor": "google",
        "description": "Google's strongest Gemini: multilingual; documents and charts. Balanced price.",
        "context_window": 1_048_576,
        "max_output_tokens": 65_536,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": CHAT_FEATURES,
        "image_rule": "gemini_tiles",
        "image_rule_params": GEMINI_TILES,
        "provider_hint": "openai",
        "released_on": dt.date(2025, 6, 17),
        "sort_order": 50,
        # Prompts ≤ 200k tokens; longer prompts cost more upstream (not modelled).
        "price": {"input": "1.25", "output": "10", "cached_input": "0.125", "batch_percent": 50},
        "tasks": _scores(
            chat=92,
            general_vision=88,
            ocr_document=(96, "documents, tables and forms"),
            charts=(94, "charts and diagrams"),
            art_analysis=82,
            spatial_reasoning=82,
            chinese_documents=80,
            medical_imaging=80,
            traffic_realtime=80,
            product_recognition=82,
            multilingual=(95, "multilingual"),
        ),
    },
    {
        "model_id": "gemini-2.5-flash",
        "display_name": "Gemini 2.5 Flash",
        "vendor": "google",
        "description": "Fast, cheap Gemini with vision: documents and charts at a low price.",
        "context_window": 1_048_576,
        "max_output_tokens": 65_536,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": CHAT_FEATURES,
        "image_rule": "gemini_tiles",
        "image_rule_params": GEMINI_TILES,
        "provider_hint": "openai",
        "released_on": dt.date(2025, 6, 17),
        "sort_order": 51,
        "price": {"input": "0.30", "output": "2.50", "cached_input": "0.03", "batch_percent": 50},
        "tasks": _scores(
            chat=82,
            general_vision=74,
            ocr_document=(88, "fast document reading"),
            charts=86,
            art_analysis=72,
            spatial_reasoning=72,
            chinese_documents=72,
            medical_imaging=68,
            traffic_realtime=76,
            product_recognition=72,
            multilingual=(90, "multilingual, fast"),
        ),
    },
    {
        "model_id": "grok-2-vision-1212",
        "display_name": "Grok 2 Vision",
        "vendor": "xai",
        "description": "xAI's vision model: real-time scenes, strong reasoning about spatial relations.",
        "context_window": 32_768,
        "max_output_tokens": 8192,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": CHAT_FEATURES,
        "image_rule": "tiles",
        "image_rule_params": XAI_TILES,
        "provider_hint": "openai",
        "released_on": dt.date(2024, 12, 12),
        "sort_order": 60,
        "aliases": ["grok-2-vision", "grok-2-vision-latest", "grok-vision"],
        "price": {"input": "2", "output": "10", "image_input": "2", "batch_percent": 100},
        "tasks": _scores(
            chat=78,
            general_vision=82,
            ocr_document=70,
            charts=72,
            art_analysis=70,
            spatial_reasoning=(92, "spatial relations and detection"),
            chinese_documents=60,
            medical_imaging=65,
            traffic_realtime=(94, "real-time scenes, strong reasoning"),
            product_recognition=76,
            multilingual=70,
        ),
    },
    {
        "model_id": "qwen-vl-max",
        "display_name": "Qwen-VL Max",
        "vendor": "alibaba",
        "description": "Alibaba's strongest Qwen-VL: Chinese documents and local scenes, low price.",
        "context_window": 131_072,
        "max_output_tokens": 8192,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": ["streaming", "json_mode", "system_prompt"],
        "image_rule": "qwen_patches",
        "image_rule_params": QWEN_PATCHES,
        "provider_hint": "openai",
        "released_on": dt.date(2024, 1, 26),
        "sort_order": 70,
        "price": {"input": "0.80", "output": "3.20", "batch_percent": 50},
        "tasks": _scores(
            chat=75,
            general_vision=(80, "Chinese-specialised, economical"),
            ocr_document=80,
            charts=76,
            art_analysis=78,
            spatial_reasoning=74,
            chinese_documents=(95, "Chinese documents, local scenes"),
            medical_imaging=65,
            traffic_realtime=65,
            product_recognition=(86, "products and Chinese packaging"),
            multilingual=75,
        ),
    },
    {
        "model_id": "qwen-vl-plus",
        "display_name": "Qwen-VL Plus",
        "vendor": "alibaba",
        "description": "Cheaper Qwen-VL: Chinese documents on a budget.",
        "context_window": 131_072,
        "max_output_tokens": 8192,
        "input_modalities": [TEXT, IMAGE],
        "output_modalities": [TEXT],
        "features": ["streaming", "json_mode", "system_prompt"],
        "image_rule": "qwen_patches",
        "image_rule_params": QWEN_PATCHES,
        "provider_hint": "openai",
        "released_on": dt.date(2024, 1, 26),
        "sort_order": 71,
        "price": {"input": "0.21", "output": "0.63", "batch_percent": 50},
        "tasks": _scores(
            chat=68,
            general_vision=70,
            ocr_document=74,
            charts=68,
            art_analysis=(76, "economical artwork description"),
            spatial_reasoning=64,
            chinese_documents=(88, "Chinese documents, cheapest"),
            medical_imaging=55,
            traffic_realtime=55,
            product_recognition=74,
            multilingual=70,
        ),
    },
]

SEED_PLANS = [
    {"slug": "standard", "name": "Standard", "num": 1, "den": 1, "description": "List prices."},
]


def _price_fields(spec: dict) -> dict:
    def opt(key: str) -> int | None:
        return usd(spec[key]) if key in spec else None

    return {
        "input_per_mtok": usd(spec["input"]),
        "output_per_mtok": usd(spec["output"]),
        "cached_input_per_mtok": opt("cached_input"),
        "cache_write_per_mtok": opt("cache_write"),
        "image_input_per_mtok": opt("image_input"),
        "image_output_per_mtok": opt("image_output"),
        "per_image": {k: usd(v) for k, v in spec.get("per_image", {}).items()},
        "batch_percent": spec.get("batch_percent", 100),
    }


def apply_seed(*, AiModel, ModelAlias, TaskScore, Price, PricingPlan) -> int:
    """Upsert the seed catalogue. Idempotent; never touches prices already recorded
    (a price row at the seed date is created only when missing). Returns models touched."""
    by_id = {}
    for spec in SEED_MODELS:
        defaults = {
            key: spec.get(key, default)
            for key, default in (
                ("display_name", spec["model_id"]),
                ("vendor", "openai"),
                ("description", ""),
                ("context_window", None),
                ("max_output_tokens", None),
                ("input_modalities", [TEXT]),
                ("output_modalities", [TEXT]),
                ("features", []),
                ("image_rule", "none"),
                ("image_rule_params", {}),
                ("image_output_tokens", {}),
                ("provider_hint", "openai"),
                ("released_on", None),
                ("sort_order", 100),
                ("status", "active"),
            )
        }
        model, _ = AiModel.objects.update_or_create(model_id=spec["model_id"], defaults=defaults)
        by_id[spec["model_id"]] = model
        for alias in spec.get("aliases", []):
            ModelAlias.objects.update_or_create(alias=alias, defaults={"model": model})
        for task, (score, note) in spec["tasks"].items():
            TaskScore.objects.update_or_create(
                model=model, task=task, defaults={"score": score, "note": note}
            )
        if not Price.objects.filter(model=model).exists():
            Price.objects.create(
                model=model,
                effective_from=SEED_PRICES_FROM,
                note="seed list price",
                **_price_fields(spec["price"]),
            )
    for spec in SEED_MODELS:
        if spec.get("replacement"):
            AiModel.objects.filter(pk=by_id[spec["model_id"]].pk).update(
                replacement=by_id[spec["replacement"]]
            )
    for plan in SEED_PLANS:
        PricingPlan.objects.get_or_create(
            slug=plan["slug"],
            defaults={
                "name": plan["name"],
                "multiplier_numerator": plan["num"],
                "multiplier_denominator": plan["den"],
                "description": plan["description"],
            },
        )
    return len(by_id)
