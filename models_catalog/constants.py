"""Vocabulary of the catalogue: modalities, features, tasks, vendors, provider types.

These are stored as plain strings in JSON lists / char fields so that adding a task or
a feature is a code change here plus data, never a schema migration.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Modality(models.TextChoices):
    TEXT = "text", _("Text")
    IMAGE = "image", _("Image")
    EMBEDDING = "embedding", _("Embedding")


INPUT_MODALITIES = (Modality.TEXT, Modality.IMAGE)
OUTPUT_MODALITIES = (Modality.TEXT, Modality.IMAGE, Modality.EMBEDDING)


class Feature(models.TextChoices):
    STREAMING = "streaming", _("Streaming")
    TOOLS = "tools", _("Tools / function calling")
    JSON_MODE = "json_mode", _("JSON mode")
    SYSTEM_PROMPT = "system_prompt", _("System prompt")
    # An image generator that also accepts reference images to edit. This is *not*
    # image understanding (input modality "image"): gpt-image-1 edits, it cannot read.
    IMAGE_EDITING = "image_editing", _("Image editing")


class Task(models.TextChoices):
    CHAT = "chat", _("General chat and writing")
    GENERAL_VISION = "general_vision", _("General image recognition")
    OCR_DOCUMENT = "ocr_document", _("Document OCR")
    CHARTS = "charts", _("Charts and diagrams")
    ART_ANALYSIS = "art_analysis", _("Artwork analysis")
    SPATIAL_REASONING = "spatial_reasoning", _("Spatial relations and detection")
    CHINESE_DOCUMENTS = "chinese_documents", _("Chinese documents")
    MEDICAL_IMAGING = "medical_imaging", _("Professional / medical imaging")
    TRAFFIC_REALTIME = "traffic_realtime", _("Traffic and real-time scenes")
    PRODUCT_RECOGNITION = "product_recognition", _("Product recognition")
    MULTILINGUAL = "multilingual", _("Multilingual")
    IMAGE_GENERATION = "image_generation", _("Image generation")
    IMAGE_EDITING = "image_editing", _("Image editing")
    EMBEDDINGS = "embeddings", _("Embeddings")


# Tasks that are about understanding an image: a model needs image input and text output.
VISION_TASKS = frozenset(
    {
        Task.GENERAL_VISION,
        Task.OCR_DOCUMENT,
        Task.CHARTS,
        Task.ART_ANALYSIS,
        Task.SPATIAL_REASONING,
        Task.CHINESE_DOCUMENTS,
        Task.MEDICAL_IMAGING,
        Task.TRAFFIC_REALTIME,
        Task.PRODUCT_RECOGNITION,
    }
)

# Short aliases accepted by ``?task=`` filters and the recommender.
TASK_ALIASES = {
    "ocr": Task.OCR_DOCUMENT,
    "document": Task.OCR_DOCUMENT,
    "vision": Task.GENERAL_VISION,
    "art": Task.ART_ANALYSIS,
    "medical": Task.MEDICAL_IMAGING,
    "traffic": Task.TRAFFIC_REALTIME,
    "product": Task.PRODUCT_RECOGNITION,
    "chinese": Task.CHINESE_DOCUMENTS,
    "spatial": Task.SPATIAL_REASONING,
    "embedding": Task.EMBEDDINGS,
}


def task_normalize(value: str) -> str | None:
    value = (value or "").strip().lower()
    if value in Task.values:
        return value
    alias = TASK_ALIASES.get(value)
    return str(alias) if alias else None


class Vendor(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google"
    XAI = "xai", "xAI"
    ALIBABA = "alibaba", "Alibaba (Qwen)"
    LOCAL = "local", _("Local")


class ProviderType(models.TextChoices):
    """Which SDK the relay speaks to a channel with."""

    OPENAI = "openai", _("OpenAI-compatible (openai SDK)")
    ANTHROPIC = "anthropic", _("Anthropic (anthropic SDK)")
    LOCAL = "local", _("Local")


class ModelStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    # Still served; clients are told the replacement.
    DEPRECATED = "deprecated", _("Deprecated")
    # No longer served: requests are refused naming the replacement.
    RETIRED = "retired", _("Retired")


class ImageRuleKind(models.TextChoices):
    NONE = "none", _("No image input")
    OPENAI_TILES = "openai_tiles", _("OpenAI 512px tiles (gpt-4o family)")
    ANTHROPIC_PIXELS = "anthropic_pixels", _("Anthropic width×height/750")
    GEMINI_TILES = "gemini_tiles", _("Gemini 258 tokens per 768px tile")
    QWEN_PATCHES = "qwen_patches", _("Qwen-VL 28px patches")
    TILES = "tiles", _("Generic tiles")
    # The same token count for every image, whatever its size (``params["tokens"]``): a
    # per-image price expressed as tokens (the local OCR model, docs/local-ocr.md).
    FIXED = "fixed", _("Fixed tokens per image")


class ChannelSource(models.TextChoices):
    ADMIN = "admin", _("Admin")
    ENV = "env", _("Environment")
    SIMULATOR = "simulator", _("Upstream simulator (demo)")
    # A model run inside the gateway's own processes (provider type ``local``).
    LOCAL = "local", _("Local model (in process)")
