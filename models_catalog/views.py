"""Public, anonymous views: ``GET /v1/models`` (OpenAI list shape) and the catalogue page.

The catalogue is public, so ``/v1/models`` accepts any or no API key (OpenAI requires one;
SDKs always send one, and it is simply not checked here).
"""

from __future__ import annotations

import functools

from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from .constants import INPUT_MODALITIES, OUTPUT_MODALITIES, Task, task_normalize
from .errors import ModelNotFound
from .presenters import best_for, openai_model_entry, per_image_prices, pricing_dict
from .pricing import units_to_usd
from .selectors import model_resolve, models_list, served_by_simulator


def _openai_error(message: str, *, code: str, param: str | None, status: int) -> JsonResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return JsonResponse(body, status=status)


def _get_only(view):
    """GET (and HEAD) only; other methods get a 405 in the OpenAI error shape."""

    @csrf_exempt  # an API endpoint: no cookies involved, any method answers in the API's shape
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD"):
            response = _openai_error(
                "Use GET for this endpoint.", code="method_not_allowed", param=None, status=405
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return wrapper


def _filters(params) -> tuple[dict, JsonResponse | None]:
    filters = {}
    for name, allowed in (("input", INPUT_MODALITIES), ("output", OUTPUT_MODALITIES)):
        value = (params.get(name) or "").strip().lower()
        if value:
            if value not in allowed:
                return {}, _openai_error(
                    f"Unknown {name} modality '{value}'; use one of {', '.join(allowed)}.",
                    code="invalid_value",
                    param=name,
                    status=400,
                )
            filters[name] = value
    task = (params.get("task") or "").strip()
    if task:
        normalized = task_normalize(task)
        if normalized is None:
            return {}, _openai_error(
                f"Unknown task '{task}'; use one of {', '.join(Task.values)}.",
                code="invalid_value",
                param="task",
                status=400,
            )
        filters["task"] = normalized
    return filters, None


@_get_only
def v1_models_list(request):
    filters, error = _filters(request.GET)
    if error:
        return error
    data = [openai_model_entry(info) for info in models_list(**filters)]
    return JsonResponse({"object": "list", "data": data})


@_get_only
def v1_model_detail(request, model_id: str):
    try:
        info = model_resolve(model_id)
    except ModelNotFound as exc:
        return _openai_error(exc.message, code=exc.code, param="model", status=exc.status)
    return JsonResponse(openai_model_entry(info))


def _row(info) -> dict:
    pricing = pricing_dict(info) or {}
    images = per_image_prices(info)
    return {
        "info": info,
        "input_modalities": sorted(info.input_modalities),
        "output_modalities": sorted(info.output_modalities),
        "pricing": pricing,
        "per_image": [
            (key.replace(":", " · "), units_to_usd(units)) for key, units in sorted(images.items())
        ],
        "best_for": best_for(info),
        "simulated": served_by_simulator(info.id),
    }


@require_GET
def catalogue_page(request):
    filters, error = _filters(request.GET)
    invalid = error is not None
    rows = [_row(info) for info in models_list(**({} if invalid else filters))]
    context = {
        "rows": rows,
        "filters": {} if invalid else filters,
        "invalid_filter": invalid,
        "input_choices": [(m.value, m.label) for m in INPUT_MODALITIES],
        "output_choices": [(m.value, m.label) for m in OUTPUT_MODALITIES],
        "task_choices": Task.choices,
    }
    return render(request, "models_catalog/catalogue.html", context, status=400 if invalid else 200)
