"""Catalogue data of the ``local`` provider: models run inside the gateway's own processes.

``local-ocr`` is RapidOCR (PP-OCR detection, orientation and recognition models bundled in
the ``rapidocr`` wheel), run offline by ``inference.local``. It is priced **per image**:
the ``fixed`` image rule gives every image the same token count, and those tokens are
priced so that one image costs ``LOCAL_OCR_PRICE_PER_IMAGE_USD`` (default $0.001).

The adapter reports image tokens inside ``prompt_tokens`` / ``input_tokens`` (the wire
formats have no separate field), so the relay charges them at the *input* price: the
input price and the image-input price must be the same number. ``local_ocr_price_units``
computes both from a per-image price.

Plain data plus an idempotent loader that works with real or historical (migration)
model classes, like ``models_catalog.seed``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

LOCAL_OCR_ID = "local-ocr"
LOCAL_OCR_TOKENS_PER_IMAGE = 1000
DEFAULT_PRICE_PER_IMAGE_USD = "0.001"
LOCAL_OCR_OUTPUT_PER_MTOK = 100_000_000  # $0.10 per 1M output tokens
LOCAL_PRICES_FROM = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)  # as the seed catalogue

LOCAL_OCR = {
    "model_id": LOCAL_OCR_ID,
    "display_name": "Local OCR (RapidOCR, offline)",
    "vendor": "local",
    "description": (
        "Reads the text in images (PP-OCR models via RapidOCR), run inside Modelgate itself: "
        "no provider key, no internet. Returns the lines as text, or with boxes and confidences "
        "in JSON mode. It reads text only; it does not describe pictures."
    ),
    "context_window": None,
    "max_output_tokens": 16_384,
    # Images only: text parts are accepted (and counted as input) but not read, so a request
    # without an image is refused by the guard before any money moves.
    "input_modalities": ["image"],
    "output_modalities": ["text"],
    "features": ["streaming", "json_mode"],
    "image_rule": "fixed",
    "image_rule_params": {"tokens": LOCAL_OCR_TOKENS_PER_IMAGE},
    "image_output_tokens": {},
    "provider_hint": "local",
    "released_on": None,
    "sort_order": 200,
    "status": "active",
    "tasks": {
        "ocr_document": (70, "printed text, offline; no layout or handwriting understanding"),
        "chinese_documents": (75, "PP-OCR reads Chinese and English"),
        "general_vision": (10, "text only: it cannot describe a picture"),
    },
}


def local_ocr_price_units(price_per_image_usd: str) -> int:
    """Nano-USD per 1M tokens so that one image (``LOCAL_OCR_TOKENS_PER_IMAGE``) costs the given USD."""
    per_mtok = Decimal(price_per_image_usd) * 1_000_000_000 * 1_000_000 / LOCAL_OCR_TOKENS_PER_IMAGE
    if per_mtok < 0 or per_mtok != per_mtok.to_integral_value():
        raise ValueError(
            f"{price_per_image_usd} USD per image is not a whole number of nano-USD per 1M tokens"
        )
    return int(per_mtok)


def apply_local_seed(*, AiModel, TaskScore, Price) -> int:
    """Upsert ``local-ocr`` (idempotent). A price row at ``LOCAL_PRICES_FROM`` is created only
    when the model has none: recorded prices are never rewritten. Returns models touched."""
    spec = LOCAL_OCR
    fields = (
        "display_name",
        "vendor",
        "description",
        "context_window",
        "max_output_tokens",
        "input_modalities",
        "output_modalities",
        "features",
        "image_rule",
        "image_rule_params",
        "image_output_tokens",
        "provider_hint",
        "released_on",
        "sort_order",
        "status",
    )
    model, _ = AiModel.objects.update_or_create(
        model_id=spec["model_id"], defaults={name: spec[name] for name in fields}
    )
    for task, (score, note) in spec["tasks"].items():
        TaskScore.objects.update_or_create(model=model, task=task, defaults={"score": score, "note": note})
    if not Price.objects.filter(model=model).exists():
        per_token = local_ocr_price_units(DEFAULT_PRICE_PER_IMAGE_USD)
        Price.objects.create(
            model=model,
            effective_from=LOCAL_PRICES_FROM,
            input_per_mtok=per_token,
            image_input_per_mtok=per_token,
            output_per_mtok=LOCAL_OCR_OUTPUT_PER_MTOK,
            per_image={},
            batch_percent=100,
            note=f"local OCR: ${DEFAULT_PRICE_PER_IMAGE_USD} per image ({LOCAL_OCR_TOKENS_PER_IMAGE} tokens)",
        )
    return 1


def apply_local_seed_migration(apps, schema_editor) -> None:
    """``RunPython`` form of :func:`apply_local_seed`, with the historical models of ``apps``."""
    apply_local_seed(
        AiModel=apps.get_model("models_catalog", "AiModel"),
        TaskScore=apps.get_model("models_catalog", "TaskScore"),
        Price=apps.get_model("models_catalog", "Price"),
    )
