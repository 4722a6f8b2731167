"""Reads. The relay's hot path goes through one cached, immutable catalogue snapshot.

The snapshot lives in the Django cache under a version key; ``services.catalogue_changed``
replaces the version on every write, so the next read rebuilds it. Each process also
keeps the snapshot it last used and re-checks only the (tiny) version key, so a lookup
costs one cache GET. Without a shared cache (the embedded default's local-memory cache),
other processes pick a change up within ``CATALOGUE_CACHE_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from fractions import Fraction

from django.conf import settings

from config.cachesafe import cache_add, cache_get, cache_set
from config.localcache import io_point

from .constants import VISION_TASKS, Modality, ModelStatus, Task, task_normalize
from .errors import ModelNotFound, PricingPlanNotFound
from .info import ChannelInfo, ModelInfo, PriceInfo, RequestNeeds, TaskStrength
from .models import AiModel, Channel, PricingPlan

VERSION_KEY = "catalogue:version"


def _ttl() -> int:
    return getattr(settings, "CATALOGUE_CACHE_SECONDS", 60)


@dataclass(frozen=True)
class CatalogueSnapshot:
    version: str
    models: dict[str, ModelInfo]  # id → info, in display order
    aliases: dict[str, str]  # alias → id
    plans: dict[str, Fraction]
    channels: dict[str, tuple[ChannelInfo, ...]] = field(default_factory=dict)  # model id → channels


# --- building ----------------------------------------------------------------------------


def _price_info(price) -> PriceInfo:
    return PriceInfo(
        effective_from=price.effective_from,
        input_per_mtok=price.input_per_mtok,
        output_per_mtok=price.output_per_mtok,
        cached_input_per_mtok=price.cached_input_per_mtok,
        cache_write_per_mtok=price.cache_write_per_mtok,
        image_input_per_mtok=price.image_input_per_mtok,
        image_output_per_mtok=price.image_output_per_mtok,
        per_image=tuple(sorted((str(k), int(v)) for k, v in (price.per_image or {}).items())),
        batch_percent=price.batch_percent,
    )


def model_info_from(row: AiModel) -> ModelInfo:
    released = row.released_on or row.created_at.date()
    created = int(dt.datetime.combine(released, dt.time(), tzinfo=dt.UTC).timestamp())
    return ModelInfo(
        id=row.model_id,
        display_name=row.display_name,
        vendor=row.vendor,
        status=row.status,
        replacement=row.replacement.model_id if row.replacement_id else None,
        input_modalities=frozenset(row.input_modalities or []),
        output_modalities=frozenset(row.output_modalities or []),
        features=frozenset(row.features or []),
        tasks=tuple(
            TaskStrength(ts.task, ts.score, ts.note)
            for ts in sorted(row.task_scores.all(), key=lambda t: -t.score)
        ),
        context_window=row.context_window,
        max_output_tokens=row.max_output_tokens,
        prices=tuple(_price_info(p) for p in sorted(row.prices.all(), key=lambda p: p.effective_from)),
        provider_hint=row.provider_hint,
        image_rule=row.image_rule,
        image_rule_params=tuple(sorted((str(k), int(v)) for k, v in (row.image_rule_params or {}).items())),
        image_output_tokens=tuple(
            (size, tuple(sorted((q, int(n)) for q, n in qualities.items())))
            for size, qualities in sorted((row.image_output_tokens or {}).items())
        ),
        aliases=tuple(sorted(a.alias for a in row.aliases.all())),
        description=row.description,
        created=created,
        sort_order=row.sort_order,
    )


def _channel_info(channel: Channel) -> ChannelInfo:
    cost = None
    if channel.cost_multiplier_numerator is not None and channel.cost_multiplier_denominator:
        cost = (channel.cost_multiplier_numerator, channel.cost_multiplier_denominator)
    return ChannelInfo(
        id=channel.id,
        name=channel.name,
        provider_type=channel.provider_type,
        base_url=channel.base_url,
        priority=channel.priority,
        weight=channel.weight,
        upstream_models=tuple(
            sorted(
                (cm.model.model_id, cm.upstream_model)
                for cm in channel.channel_models.all()
                if cm.upstream_model
            )
        ),
        cost_multiplier=cost,
        cooldown_until=channel.cooldown_until,
        consecutive_failures=channel.consecutive_failures,
        api_key_hint=channel.api_key_hint,
        source=channel.source,
        _ciphertext=channel.api_key_ciphertext,
    )


def _build(version: str) -> CatalogueSnapshot:
    rows = (
        AiModel.objects.select_related("replacement")
        .prefetch_related("aliases", "task_scores", "prices")
        .order_by("sort_order", "model_id")
    )
    models: dict[str, ModelInfo] = {}
    aliases: dict[str, str] = {}
    for row in rows:
        info = model_info_from(row)
        models[info.id] = info
        for alias in info.aliases:
            aliases[alias] = info.id
    plans = {
        p.slug: Fraction(p.multiplier_numerator, p.multiplier_denominator) for p in PricingPlan.objects.all()
    }
    by_model: dict[str, list[ChannelInfo]] = {}
    channels = Channel.objects.filter(enabled=True).prefetch_related("channel_models__model")
    for channel in channels.order_by("-priority", "name"):
        info = _channel_info(channel)
        for cm in channel.channel_models.all():
            by_model.setdefault(cm.model.model_id, []).append(info)
    return CatalogueSnapshot(
        version=version,
        models=models,
        aliases=aliases,
        plans=plans,
        channels={k: tuple(v) for k, v in by_model.items()},
    )


# --- caching -----------------------------------------------------------------------------

_local: tuple[str, float, CatalogueSnapshot] | None = None
# The shared version as this process last read it: (monotonic time, version). The relay asks for
# the snapshot several times per request; the shared cache is asked at most once every
# CATALOGUE_VERSION_CHECK_SECONDS (a change made in this process resets it at once).
_version_seen: tuple[float, str] | None = None


def catalogue_version_forget() -> None:
    global _version_seen
    _version_seen = None


def catalogue_version() -> str:
    global _version_seen
    now = time.monotonic()
    seen = _version_seen
    if seen is not None and now - seen[0] < settings.CATALOGUE_VERSION_CHECK_SECONDS:
        return seen[1]
    io_point()
    # (A cache that is down reads as a miss: a fresh version, so the snapshot is rebuilt from
    # the database — at most once every CATALOGUE_VERSION_CHECK_SECONDS.)
    version = cache_get(VERSION_KEY)
    if version is None:
        cache_add(VERSION_KEY, uuid.uuid4().hex, timeout=None)
        version = cache_get(VERSION_KEY) or uuid.uuid4().hex
    _version_seen = (now, version)
    return version


def catalogue_snapshot() -> CatalogueSnapshot:
    global _local
    version = catalogue_version()
    now = time.monotonic()
    local = _local
    if local is not None and local[0] == version and now - local[1] < _ttl():
        return local[2]
    io_point()
    key = f"catalogue:snapshot:{version}"
    snapshot = cache_get(key)
    if snapshot is None:
        snapshot = _build(version)
        cache_set(key, snapshot, _ttl())
    _local = (version, now, snapshot)
    return snapshot


# --- the relay's lookups -------------------------------------------------------------------


def model_resolve(model_id: str) -> ModelInfo:
    """The model a client named, by id or alias (exact, then case-insensitive)."""
    snap = catalogue_snapshot()
    name = (model_id or "").strip()
    info = snap.models.get(name) or snap.models.get(snap.aliases.get(name, ""))
    if info is None:
        lowered = name.lower()
        for candidate in (*snap.models, *snap.aliases):
            if candidate.lower() == lowered:
                info = snap.models.get(candidate) or snap.models[snap.aliases[candidate]]
                break
    if info is None:
        raise ModelNotFound(f"The model '{name}' does not exist.", extra={"model": name})
    return info


def channels_for_model(model_id: str) -> list[ChannelInfo]:
    """Enabled channels serving the model, highest priority first (weights apply within a priority)."""
    info = model_resolve(model_id)
    return list(catalogue_snapshot().channels.get(info.id, ()))


def pricing_plan_multiplier(slug: str) -> Fraction:
    plans = catalogue_snapshot().plans
    if slug not in plans:
        raise PricingPlanNotFound(f"Unknown pricing plan '{slug}'.", extra={"plan": slug})
    return plans[slug]


# --- listing ---------------------------------------------------------------------------------


def models_list(
    *,
    input: str | None = None,
    output: str | None = None,
    task: str | None = None,
    include_retired: bool = False,
) -> list[ModelInfo]:
    """Catalogue models, filtered by an input modality, an output modality and/or a task."""
    found = []
    task = task_normalize(task) if task else None
    for info in catalogue_snapshot().models.values():
        if not include_retired and info.status == ModelStatus.RETIRED:
            continue
        if input and input not in info.input_modalities:
            continue
        if output and output not in info.output_modalities:
            continue
        if task and info.task_score(task) <= 0:
            continue
        found.append(info)
    if task:
        found.sort(key=lambda m: -m.task_score(task))
    return found


def needs_for_task(task: str) -> RequestNeeds:
    if task in VISION_TASKS:
        return RequestNeeds(input_modalities=frozenset({Modality.TEXT, Modality.IMAGE}), image_count=1)
    if task in (Task.IMAGE_GENERATION, Task.IMAGE_EDITING):
        inputs = {Modality.TEXT, Modality.IMAGE} if task == Task.IMAGE_EDITING else {Modality.TEXT}
        return RequestNeeds(input_modalities=frozenset(inputs), output=Modality.IMAGE)
    if task == Task.EMBEDDINGS:
        return RequestNeeds(output=Modality.EMBEDDING)
    return RequestNeeds()


def served_by_simulator(model_id: str) -> bool:
    """True when every enabled channel of the model is the upstream simulator (demo mode)."""
    channels = catalogue_snapshot().channels.get(model_id, ())
    return bool(channels) and all(c.source == "simulator" for c in channels)


def demo_mode() -> bool:
    """True when the only enabled channels are the upstream simulator (``make run`` without keys)."""
    channels = {c.id: c for group in catalogue_snapshot().channels.values() for c in group}
    return bool(channels) and all(c.source == "simulator" for c in channels.values())
