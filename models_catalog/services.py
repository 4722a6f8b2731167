"""Writes to the catalogue. Every write ends with ``catalogue_changed()`` so cached snapshots rebuild."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.errors import ValidationFailed

from . import crypto
from .constants import ChannelSource, ModelStatus, ProviderType, Vendor
from .errors import ChannelNotFound, ModelNotFound
from .models import AiModel, Channel, ChannelModel, ModelAlias, Price, PricingPlan, TaskScore
from .selectors import VERSION_KEY, catalogue_version_forget

logger = logging.getLogger(__name__)


def _bump() -> None:
    cache.set(VERSION_KEY, uuid.uuid4().hex, timeout=None)
    catalogue_version_forget()


def catalogue_changed() -> None:
    """Invalidate cached catalogue snapshots: now (this process sees its own writes) and
    again after commit (other processes must not cache a pre-commit view)."""
    _bump()
    transaction.on_commit(_bump)


@transaction.atomic
def catalogue_seed() -> int:
    """Load the seed catalogue (idempotent). The data migration runs the same loader."""
    from .seed import apply_seed

    count = apply_seed(
        AiModel=AiModel, ModelAlias=ModelAlias, TaskScore=TaskScore, Price=Price, PricingPlan=PricingPlan
    )
    catalogue_changed()
    return count


# --- prices and plans ----------------------------------------------------------------------


@transaction.atomic
def price_create(
    *,
    model_id: str,
    effective_from: dt.datetime,
    input_per_mtok: int,
    output_per_mtok: int,
    cached_input_per_mtok: int | None = None,
    cache_write_per_mtok: int | None = None,
    image_input_per_mtok: int | None = None,
    image_output_per_mtok: int | None = None,
    per_image: Mapping[str, int] | None = None,
    batch_percent: int = 100,
    note: str = "",
) -> Price:
    """Schedule a new list price. History is append-only: usage before ``effective_from``
    keeps the price that was in effect then."""
    model = AiModel.objects.filter(model_id=model_id).first()
    if model is None:
        raise ModelNotFound(f"The model '{model_id}' does not exist.", extra={"model": model_id})
    if timezone.is_naive(effective_from):
        raise ValidationFailed("effective_from must be timezone-aware.")
    amounts = [input_per_mtok, output_per_mtok, *(per_image or {}).values()]
    amounts += [
        v
        for v in (cached_input_per_mtok, cache_write_per_mtok, image_input_per_mtok, image_output_per_mtok)
        if v is not None
    ]
    if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in amounts):
        raise ValidationFailed("Prices are non-negative integers of nano-USD.")
    if not 1 <= batch_percent <= 100:
        raise ValidationFailed("batch_percent must be between 1 and 100.")
    if Price.objects.filter(model=model, effective_from=effective_from).exists():
        raise ValidationFailed("A price starting at that moment already exists.")
    price = Price.objects.create(
        model=model,
        effective_from=effective_from,
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cached_input_per_mtok=cached_input_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
        image_input_per_mtok=image_input_per_mtok,
        image_output_per_mtok=image_output_per_mtok,
        per_image=dict(per_image or {}),
        batch_percent=batch_percent,
        note=note,
    )
    catalogue_changed()
    return price


@transaction.atomic
def pricing_plan_upsert(
    *, slug: str, name: str, numerator: int, denominator: int, description: str = ""
) -> PricingPlan:
    if numerator < 1 or denominator < 1:
        raise ValidationFailed("A plan multiplier is a ratio of positive integers.")
    plan, _ = PricingPlan.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "multiplier_numerator": numerator,
            "multiplier_denominator": denominator,
            "description": description,
        },
    )
    catalogue_changed()
    return plan


@transaction.atomic
def model_status_set(*, model_id: str, status: str, replacement_id: str | None = None) -> AiModel:
    model = AiModel.objects.select_for_update().filter(model_id=model_id).first()
    if model is None:
        raise ModelNotFound(f"The model '{model_id}' does not exist.", extra={"model": model_id})
    if status not in ModelStatus.values:
        raise ValidationFailed(f"Unknown status '{status}'.")
    replacement = None
    if replacement_id:
        replacement = AiModel.objects.filter(model_id=replacement_id).first()
        if replacement is None or replacement.pk == model.pk:
            raise ValidationFailed("The replacement must be another catalogue model.")
    model.status = status
    model.replacement = replacement
    model.save(update_fields=["status", "replacement", "updated_at"])
    catalogue_changed()
    return model


# --- channels ----------------------------------------------------------------------------------


def _set_key(channel: Channel, api_key: str) -> None:
    channel.api_key_ciphertext = crypto.encrypt(api_key) if api_key else ""
    channel.api_key_hint = crypto.hint(api_key) if api_key else ""


def _set_models(
    channel: Channel, model_ids: Iterable[str], upstream: Mapping[str, str] | None = None
) -> None:
    upstream = upstream or {}
    wanted = list(dict.fromkeys(model_ids))
    rows = {m.model_id: m for m in AiModel.objects.filter(model_id__in=wanted)}
    unknown = [m for m in wanted if m not in rows]
    if unknown:
        raise ModelNotFound(f"Unknown models: {', '.join(unknown)}.", extra={"models": unknown})
    ChannelModel.objects.filter(channel=channel).exclude(model__model_id__in=wanted).delete()
    for model_id in wanted:
        ChannelModel.objects.update_or_create(
            channel=channel, model=rows[model_id], defaults={"upstream_model": upstream.get(model_id, "")}
        )


@transaction.atomic
def channel_create(
    *,
    name: str,
    provider_type: str,
    base_url: str = "",
    api_key: str = "",
    model_ids: Iterable[str] = (),
    upstream_models: Mapping[str, str] | None = None,
    priority: int = 0,
    weight: int = 1,
    enabled: bool = True,
    source: str = ChannelSource.ADMIN,
) -> Channel:
    if provider_type not in ProviderType.values:
        raise ValidationFailed(f"Unknown provider type '{provider_type}'.")
    if Channel.objects.filter(name=name).exists():
        raise ValidationFailed(f"A channel named '{name}' already exists.")
    channel = Channel(
        name=name,
        provider_type=provider_type,
        base_url=base_url,
        priority=priority,
        weight=weight,
        enabled=enabled,
        source=source,
    )
    _set_key(channel, api_key)
    channel.save()
    _set_models(channel, model_ids, upstream_models)
    catalogue_changed()
    return channel


@transaction.atomic
def channel_set_api_key(*, channel_id: int, api_key: str) -> Channel:
    channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
    if channel is None:
        raise ChannelNotFound("No such channel.")
    _set_key(channel, api_key)
    channel.save(update_fields=["api_key_ciphertext", "api_key_hint", "updated_at"])
    catalogue_changed()
    return channel


@transaction.atomic
def channel_set_models(
    *, channel_id: int, model_ids: Iterable[str], upstream_models: Mapping[str, str] | None = None
) -> Channel:
    channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
    if channel is None:
        raise ChannelNotFound("No such channel.")
    _set_models(channel, model_ids, upstream_models)
    catalogue_changed()
    return channel


@transaction.atomic
def channel_keys_rotate() -> int:
    """Re-encrypt every stored channel key under the newest ``FIELD_ENCRYPTION_KEYS`` entry."""
    count = 0
    for channel in Channel.objects.select_for_update().exclude(api_key_ciphertext="").order_by("pk"):
        channel.api_key_ciphertext = crypto.rotate(channel.api_key_ciphertext)
        channel.save(update_fields=["api_key_ciphertext", "updated_at"])
        count += 1
    catalogue_changed()
    return count


def channel_record_failure(*, channel_id: int, error: str = "", cooldown_seconds: int = 0) -> None:
    """The relay reports an upstream failure; with ``cooldown_seconds`` the channel rests."""
    now = timezone.now()
    fields = {
        "consecutive_failures": F("consecutive_failures") + 1,
        "last_error_at": now,
        "last_error": error[:300],
    }
    if cooldown_seconds:
        fields["cooldown_until"] = now + dt.timedelta(seconds=cooldown_seconds)
    Channel.objects.filter(pk=channel_id).update(**fields)
    if cooldown_seconds:
        catalogue_changed()


def channel_record_success(*, channel_id: int) -> None:
    updated = (
        Channel.objects.filter(pk=channel_id)
        .exclude(consecutive_failures=0, cooldown_until__isnull=True)
        .update(consecutive_failures=0, cooldown_until=None)
    )
    if updated:
        catalogue_changed()


# --- channels from the environment (embedded default) -----------------------------------------------


@dataclass(frozen=True)
class EnvProvider:
    prefix: str
    vendor: str
    provider_type: str
    default_base_url: str


ENV_PROVIDERS = (
    EnvProvider("OPENAI", Vendor.OPENAI, ProviderType.OPENAI, "https://api.openai.com/v1"),
    EnvProvider("ANTHROPIC", Vendor.ANTHROPIC, ProviderType.ANTHROPIC, "https://api.anthropic.com"),
    EnvProvider("XAI", Vendor.XAI, ProviderType.OPENAI, "https://api.x.ai/v1"),
    EnvProvider(
        "DASHSCOPE", Vendor.ALIBABA, ProviderType.OPENAI, "https://dashscope.aliyuncs.com/compatible-mode/v1"
    ),
    EnvProvider(
        "GEMINI",
        Vendor.GOOGLE,
        ProviderType.OPENAI,
        "https://generativelanguage.googleapis.com/v1beta/openai/",
    ),
)


@transaction.atomic
def channels_sync_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """Upsert one ``env:<vendor>`` channel per ``<PREFIX>_API_KEY`` present, serving every
    catalogue model of that vendor; disable env channels whose key is gone. Idempotent.
    Returns {channel name: "created" | "updated" | "unchanged" | "disabled"}."""
    result: dict[str, str] = {}
    for spec in ENV_PROVIDERS:
        name = f"env:{spec.vendor}"
        api_key = (environ.get(f"{spec.prefix}_API_KEY") or "").strip()
        base_url = (environ.get(f"{spec.prefix}_BASE_URL") or "").strip() or spec.default_base_url
        channel = Channel.objects.select_for_update().filter(name=name).first()
        if not api_key:
            if channel is not None and channel.enabled:
                channel.enabled = False
                channel.save(update_fields=["enabled", "updated_at"])
                result[name] = "disabled"
            continue
        model_ids = list(AiModel.objects.filter(vendor=spec.vendor).values_list("model_id", flat=True))
        if channel is None:
            channel_create(
                name=name,
                provider_type=spec.provider_type,
                base_url=base_url,
                api_key=api_key,
                model_ids=model_ids,
                source=ChannelSource.ENV,
            )
            result[name] = "created"
            continue
        changed = []
        if not channel.api_key_ciphertext or crypto.decrypt(channel.api_key_ciphertext) != api_key:
            _set_key(channel, api_key)
            changed += ["api_key_ciphertext", "api_key_hint"]
        for attr, value in (
            ("base_url", base_url),
            ("provider_type", spec.provider_type),
            ("enabled", True),
            ("source", ChannelSource.ENV),
        ):
            if getattr(channel, attr) != value:
                setattr(channel, attr, value)
                changed.append(attr)
        served = set(channel.channel_models.values_list("model__model_id", flat=True))
        if changed:
            channel.save(update_fields=[*changed, "updated_at"])
        if served != set(model_ids):
            keep = dict(
                channel.channel_models.exclude(upstream_model="").values_list(
                    "model__model_id", "upstream_model"
                )
            )
            _set_models(channel, model_ids, keep)
            changed.append("models")
        result[name] = "updated" if changed else "unchanged"
    if any(action != "unchanged" for action in result.values()):
        catalogue_changed()
    logger.info("env channels: %s", result)
    return result


# --- the upstream simulator as a demo upstream (embedded default without provider keys) ------------

# Where each vendor's OpenAI-compatible endpoint lives on the simulator (it mirrors the real paths).
SIMULATOR_PATHS = {
    Vendor.OPENAI: "/v1",
    Vendor.XAI: "/v1",
    Vendor.GOOGLE: "/v1beta/openai",
    Vendor.ALIBABA: "/compatible-mode/v1",
}


@transaction.atomic
def channels_sync_simulator(*, base_url: str, enabled: bool = True) -> dict[str, str]:
    """One ``simulator:<vendor>`` channel per vendor, pointing at the upstream simulator.

    Used by ``make run`` when no provider key is configured, and by tests. The channels are
    labelled as a simulator (source ``simulator``) wherever channels are shown. Idempotent.
    """
    base_url = base_url.rstrip("/")
    result: dict[str, str] = {}
    vendors = AiModel.objects.exclude(vendor=Vendor.LOCAL).values_list("vendor", flat=True).distinct()
    for vendor in sorted(set(vendors)):
        provider_type = ProviderType.ANTHROPIC if vendor == Vendor.ANTHROPIC else ProviderType.OPENAI
        url = (
            base_url
            if provider_type == ProviderType.ANTHROPIC
            else base_url + SIMULATOR_PATHS.get(vendor, "/v1")
        )
        model_ids = list(AiModel.objects.filter(vendor=vendor).values_list("model_id", flat=True))
        name = f"simulator:{vendor}"
        channel = Channel.objects.select_for_update().filter(name=name).first()
        if channel is None:
            channel_create(
                name=name,
                provider_type=provider_type,
                base_url=url,
                api_key=f"sim-demo-{vendor}",
                model_ids=model_ids,
                enabled=enabled,
                source=ChannelSource.SIMULATOR,
            )
            result[name] = "created"
            continue
        channel.base_url, channel.enabled, channel.provider_type = url, enabled, provider_type
        channel.save(update_fields=["base_url", "enabled", "provider_type", "updated_at"])
        _set_models(channel, model_ids)
        result[name] = "updated"
    catalogue_changed()
    return result


# --- the local provider: models run inside the gateway's own processes (docs/local-ocr.md) -------------

LOCAL_OCR_CHANNEL = "local:ocr"


def local_ocr_installed() -> bool:
    """Whether this install has the ``ocr`` extra (rapidocr + onnxruntime). No import: cheap."""
    from importlib.util import find_spec

    return find_spec("rapidocr") is not None and find_spec("onnxruntime") is not None


@transaction.atomic
def channels_sync_local(
    *, enabled: bool | None = None, price_per_image_usd: str | None = None
) -> dict[str, str]:
    """The ``local`` provider, idempotently: ``local-ocr`` in the catalogue (loaded by
    migration 0004; restored here if a test flush or an admin removed it), its per-image
    price following ``price_per_image_usd`` (default ``settings.LOCAL_OCR_PRICE_PER_IMAGE_USD``;
    a change appends a price row effective now — history is never rewritten), and a
    ``local:ocr`` channel (provider type ``local``, source ``local``) serving it.

    ``enabled=None``: the channel is enabled when the ``ocr`` extra is installed, disabled
    otherwise (a production install without it answers "no channel" instead of failing
    each request). Returns {name: "created" | "updated" | "unchanged"} for the channel and
    ``"price"`` when a price row was added.
    """
    from django.conf import settings

    from .seed_local import LOCAL_OCR_ID, apply_local_seed, local_ocr_price_units

    result: dict[str, str] = {}
    if not AiModel.objects.filter(model_id=LOCAL_OCR_ID).exists():
        apply_local_seed(AiModel=AiModel, TaskScore=TaskScore, Price=Price)
        result[LOCAL_OCR_ID] = "created"
    price_usd = price_per_image_usd or getattr(settings, "LOCAL_OCR_PRICE_PER_IMAGE_USD", None)
    if price_usd:
        per_token = local_ocr_price_units(str(price_usd))
        current = Price.objects.filter(
            model__model_id=LOCAL_OCR_ID, effective_from__lte=timezone.now()
        ).latest()
        if current.input_per_mtok != per_token or current.image_input_per_mtok != per_token:
            price_create(
                model_id=LOCAL_OCR_ID,
                effective_from=timezone.now(),
                input_per_mtok=per_token,
                image_input_per_mtok=per_token,
                output_per_mtok=current.output_per_mtok,
                note=f"LOCAL_OCR_PRICE_PER_IMAGE_USD={price_usd}",
            )
            result["price"] = f"{price_usd} USD per image"
    wanted_enabled = local_ocr_installed() if enabled is None else enabled
    channel = Channel.objects.select_for_update().filter(name=LOCAL_OCR_CHANNEL).first()
    if channel is None:
        channel_create(
            name=LOCAL_OCR_CHANNEL,
            provider_type=ProviderType.LOCAL,
            model_ids=[LOCAL_OCR_ID],
            # Tried before any other channel serving local-ocr (the simulator's, in the demo).
            priority=100,
            enabled=wanted_enabled,
            source=ChannelSource.LOCAL,
        )
        result[LOCAL_OCR_CHANNEL] = "created"
    else:
        changed = []
        for attr, value in (
            ("provider_type", ProviderType.LOCAL),
            ("enabled", wanted_enabled),
            ("source", ChannelSource.LOCAL),
        ):
            if getattr(channel, attr) != value:
                setattr(channel, attr, value)
                changed.append(attr)
        if changed:
            channel.save(update_fields=[*changed, "updated_at"])
        if not channel.channel_models.filter(model__model_id=LOCAL_OCR_ID).exists():
            served = list(channel.channel_models.values_list("model__model_id", flat=True))
            _set_models(channel, [*served, LOCAL_OCR_ID])
            changed.append("models")
        result[LOCAL_OCR_CHANNEL] = "updated" if changed else "unchanged"
    catalogue_changed()
    logger.info("local channels: %s", result)
    return result
