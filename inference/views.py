"""Relay endpoints (async views). Thin: each hands its endpoint to ``inference.relay``."""

from __future__ import annotations

from django.views.decorators.csrf import csrf_exempt

from . import endpoints
from .errors import InvalidRequest
from .relay import Endpoint, new_request_id, relay


def _relay_view(endpoint: Endpoint):
    """A POST-only view; other methods get a 405 in the endpoint's own wire format."""

    async def view(request):
        if request.method != "POST":
            exc = InvalidRequest("Use POST for this endpoint.", status=405, code="method_not_allowed")
            response = endpoint.render_error(exc, new_request_id())
            response["Allow"] = "POST"
            return response
        return await relay(request, endpoint)

    view.__name__ = endpoint.name.replace(".", "_")
    return csrf_exempt(view)


chat_completions = _relay_view(endpoints.CHAT_COMPLETIONS)
messages = _relay_view(endpoints.MESSAGES)
embeddings = _relay_view(endpoints.EMBEDDINGS)
images_generations = _relay_view(endpoints.IMAGES_GENERATIONS)
images_edits = _relay_view(endpoints.IMAGES_EDITS)
