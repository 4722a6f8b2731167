"""Relay endpoints (async views). Thin: each hands its endpoint to ``inference.relay``."""

from __future__ import annotations

from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import endpoints
from .relay import relay


@csrf_exempt
@require_POST
async def chat_completions(request):
    return await relay(request, endpoints.CHAT_COMPLETIONS)


@csrf_exempt
@require_POST
async def messages(request):
    return await relay(request, endpoints.MESSAGES)


@csrf_exempt
@require_POST
async def embeddings(request):
    return await relay(request, endpoints.EMBEDDINGS)


@csrf_exempt
@require_POST
async def images_generations(request):
    return await relay(request, endpoints.IMAGES_GENERATIONS)


@csrf_exempt
@require_POST
async def images_edits(request):
    return await relay(request, endpoints.IMAGES_EDITS)
