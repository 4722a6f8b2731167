"""The relay's endpoints: what each reads, where it goes upstream, how its usage is found.

Chat endpoints name a ``cross_path`` / ``cross_types``: where the request goes, translated,
when the model's channel speaks the other format (see inference.translate).
"""

from __future__ import annotations

from . import usage as usage_rules
from .relay import Endpoint
from .upstream import ANTHROPIC_TYPES, OPENAI_TYPES
from .wire import (
    ANTHROPIC,
    OPENAI,
    anthropic_messages_plan,
    openai_chat_plan,
    openai_embeddings_plan,
    openai_image_edit_plan,
    openai_image_generation_plan,
    read_multipart,
)

CHAT_COMPLETIONS = Endpoint(
    name="chat.completions",
    wire_format=OPENAI,
    upstream_path="/chat/completions",
    provider_types=OPENAI_TYPES,
    plan=lambda body, files: openai_chat_plan(body),
    usage_from_body=lambda body, plan: usage_rules.openai_chat_usage(body.get("usage")),
    produced_from_body=usage_rules.openai_chat_produced,
    cross_path="/v1/messages",
    cross_types=ANTHROPIC_TYPES,
)

MESSAGES = Endpoint(
    name="messages",
    wire_format=ANTHROPIC,
    upstream_path="/v1/messages",
    provider_types=ANTHROPIC_TYPES,
    plan=lambda body, files: anthropic_messages_plan(body),
    usage_from_body=lambda body, plan: usage_rules.anthropic_usage(body.get("usage"), None),
    produced_from_body=usage_rules.anthropic_produced,
    cross_path="/chat/completions",
    cross_types=OPENAI_TYPES,
)

EMBEDDINGS = Endpoint(
    name="embeddings",
    wire_format=OPENAI,
    upstream_path="/embeddings",
    provider_types=OPENAI_TYPES,
    plan=lambda body, files: openai_embeddings_plan(body),
    usage_from_body=lambda body, plan: usage_rules.openai_embeddings_usage(body.get("usage")),
    produced_from_body=lambda body: "",
)

IMAGES_GENERATIONS = Endpoint(
    name="images.generations",
    wire_format=OPENAI,
    upstream_path="/images/generations",
    provider_types=OPENAI_TYPES,
    plan=lambda body, files: openai_image_generation_plan(body),
    usage_from_body=lambda body, plan: usage_rules.openai_images_usage(
        body, size=plan.image_size, quality=plan.image_quality
    ),
    produced_from_body=lambda body: "",
)

IMAGES_EDITS = Endpoint(
    name="images.edits",
    wire_format=OPENAI,
    upstream_path="/images/edits",
    provider_types=OPENAI_TYPES,
    plan=openai_image_edit_plan,
    usage_from_body=lambda body, plan: usage_rules.openai_images_usage(
        body, size=plan.image_size, quality=plan.image_quality
    ),
    produced_from_body=lambda body: "",
    read=read_multipart,
)
