"""The capability guard: can this model serve this request? Answers before any money moves."""

from __future__ import annotations

from .constants import Feature, Modality, ModelStatus, Task
from .errors import CapabilityMismatch, ModelRetired
from .info import ModelInfo, RequestNeeds
from .pricing import reference_cost

# Image-reading suggestions need at least this general-vision strength.
GENERAL_VISION_MIN_SCORE = 50

# Checked in this order; the first one missing shapes the message.
_ORDER = (
    "image_required",
    "image_input",
    "image_editing",
    "text_output",
    "image_output",
    "embedding_output",
    "tools",
    "json_mode",
    "streaming",
)


def missing_capabilities(model: ModelInfo, needs: RequestNeeds) -> list[str]:
    missing = set()
    outputs = model.output_modalities
    if needs.output == Modality.TEXT and Modality.TEXT not in outputs:
        missing.add("text_output")
    elif needs.output == Modality.IMAGE and Modality.IMAGE not in outputs:
        missing.add("image_output")
    elif needs.output == Modality.EMBEDDING and Modality.EMBEDDING not in outputs:
        missing.add("embedding_output")
    has_image = Modality.IMAGE in needs.input_modalities or needs.image_count
    if not has_image and Modality.TEXT not in model.input_modalities:
        missing.add("image_required")  # it reads images only (local-ocr): nothing to read
    if has_image:
        if needs.output == Modality.IMAGE:
            # An image in an image request is a picture to edit, not one to understand.
            if Modality.IMAGE in outputs and not model.has_feature(Feature.IMAGE_EDITING):
                missing.add("image_editing")
        elif not model.reads_images:
            missing.add("image_input")
    for feature, wanted in (
        (Feature.TOOLS, needs.tools),
        (Feature.JSON_MODE, needs.json_mode),
        (Feature.STREAMING, needs.streaming),
    ):
        if wanted and not model.has_feature(feature):
            missing.add(str(feature))
    return [name for name in _ORDER if name in missing]


def models_that_can(needs: RequestNeeds, *, exclude: str | None = None, limit: int = 3) -> list[str]:
    """Up to ``limit`` active models that satisfy ``needs``, cheapest first for such a request."""
    from .selectors import catalogue_snapshot

    able = []
    for info in catalogue_snapshot().models.values():
        if info.id == exclude or info.status != ModelStatus.ACTIVE:
            continue
        if missing_capabilities(info, needs):
            continue
        reads_for_text = needs.output == Modality.TEXT and Modality.IMAGE in needs.input_modalities
        if reads_for_text and info.task_score(Task.GENERAL_VISION) < GENERAL_VISION_MIN_SCORE:
            continue  # suggest models that *understand* images, not special-purpose readers (OCR)
        cost = reference_cost(info, needs)
        able.append((cost is None, cost or 0, info.sort_order, info.id))
    able.sort()
    return [row[3] for row in able[:limit]]


def _sentence(model: ModelInfo, missing: str) -> str:
    name = model.id
    generates_images = (
        Modality.IMAGE in model.output_modalities and Modality.TEXT not in model.output_modalities
    )
    embeds = Modality.EMBEDDING in model.output_modalities and Modality.TEXT not in model.output_modalities
    if missing == "image_required":
        if model.task_score(Task.OCR_DOCUMENT):
            return f"{name} reads the text in images; this request has no image."
        return f"{name} reads images only; this request has no image."
    if missing == "image_input":
        if generates_images:
            return f"{name} generates images; it cannot read them."
        if embeds:
            return f"{name} produces embeddings; it cannot read images."
        return f"{name} cannot read images; it reads text only."
    if missing == "image_editing":
        return f"{name} cannot edit images; it only generates them from text."
    if missing == "text_output":
        if generates_images:
            return f"{name} generates images; it cannot answer chat requests."
        if embeds:
            return f"{name} produces embeddings; it cannot answer chat requests."
        return f"{name} cannot produce text."
    if missing == "image_output":
        return f"{name} cannot generate images; it {model.kind_phrase}."
    if missing == "embedding_output":
        return f"{name} does not produce embeddings; it {model.kind_phrase}."
    if missing == "tools":
        return f"{name} does not support tools (function calling)."
    if missing == "json_mode":
        return f"{name} does not support JSON mode."
    return f"{name} does not support streaming."


def deprecation_notice(model: ModelInfo) -> str | None:
    if model.status == ModelStatus.DEPRECATED:
        if model.replacement:
            return f"{model.id} is deprecated; use {model.replacement} instead."
        return f"{model.id} is deprecated."
    return None


def guard_check(*, model: ModelInfo, needs: RequestNeeds) -> None:
    """Raise ``ModelRetired`` or ``CapabilityMismatch`` (naming up to three models that can), else return."""
    if model.status == ModelStatus.RETIRED:
        hint = f" Use {model.replacement} instead." if model.replacement else ""
        raise ModelRetired(
            f"{model.id} has been retired.{hint}",
            extra={"model": model.id, "replacement": model.replacement},
        )
    missing = missing_capabilities(model, needs)
    if not missing:
        return
    able = models_that_can(needs, exclude=model.id)
    message = _sentence(model, missing[0])
    if able:
        message += " Models that can: " + ", ".join(able)
    else:
        message += " No active model in the catalogue can serve this request."
    notice = deprecation_notice(model)
    if notice:
        message += f" ({notice})"
    raise CapabilityMismatch(
        message,
        extra={
            "model": model.id,
            "missing": missing,
            "models_that_can": able,
            "replacement": model.replacement,
        },
    )
