"""Public catalogue API under ``/api/models/``: recommendations and cost estimates (no auth)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import ValidationFailed

from .constants import Modality, Task
from .guard import deprecation_notice, guard_check
from .info import RequestNeeds
from .presenters import pricing_dict
from .pricing import UNITS_PER_USD, ImageSpec, cost_estimate, reference_quality, units_to_usd
from .recommend import models_recommend
from .selectors import model_resolve, pricing_plan_multiplier


class _PublicApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


class _ChoiceOut(serializers.Serializer):
    id = serializers.CharField()
    display_name = serializers.CharField()
    vendor = serializers.CharField()
    score = serializers.IntegerField()
    reason = serializers.CharField(allow_null=True)
    reference_cost_units = serializers.IntegerField()
    reference_cost_usd = serializers.CharField()
    headline_price_usd = serializers.CharField()
    pricing = serializers.DictField(allow_null=True)


def _choice(candidate, reason: str | None) -> dict:
    return {
        "id": candidate.model.id,
        "display_name": candidate.model.display_name,
        "vendor": candidate.model.vendor,
        "score": candidate.score,
        "reason": reason,
        "reference_cost_units": candidate.reference_units,
        "reference_cost_usd": units_to_usd(candidate.reference_units),
        "headline_price_usd": units_to_usd(candidate.headline_units),
        "pricing": pricing_dict(candidate.model),
    }


class ModelRecommendApi(_PublicApi):
    class InputSerializer(serializers.Serializer):
        task = serializers.CharField(max_length=64)
        max_price = serializers.CharField(max_length=32, required=False, allow_blank=True)

    class OutputSerializer(serializers.Serializer):
        task = serializers.CharField()
        task_label = serializers.CharField()
        price_basis = serializers.CharField()
        best = _ChoiceOut(allow_null=True)
        alternative = _ChoiceOut(allow_null=True)
        economical = _ChoiceOut(allow_null=True)
        ranked = _ChoiceOut(many=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("task", str, required=True, enum=list(Task.values)),
            OpenApiParameter(
                "max_price",
                str,
                description="USD per 1M input tokens (per image for image tasks), e.g. 1.00",
            ),
        ],
        responses=OutputSerializer,
        operation_id="models_recommend",
        auth=[],
    )
    def get(self, request):
        data = self.InputSerializer(data=request.query_params)
        data.is_valid(raise_exception=True)
        max_units = None
        raw = (data.validated_data.get("max_price") or "").strip()
        if raw:
            try:
                value = Decimal(raw)
            except InvalidOperation:
                raise ValidationFailed("max_price must be a decimal number of USD, e.g. 1.50.") from None
            if value < 0:
                raise ValidationFailed("max_price must not be negative.")
            max_units = int(value * UNITS_PER_USD)
        rec = models_recommend(task=data.validated_data["task"], max_price_units=max_units)
        body = {
            "task": rec.task,
            "task_label": str(Task(rec.task).label),
            "price_basis": rec.price_basis,
            "best": _choice(rec.best.candidate, rec.best.reason) if rec.best else None,
            "alternative": _choice(rec.alternative.candidate, rec.alternative.reason)
            if rec.alternative
            else None,
            "economical": _choice(rec.economical.candidate, rec.economical.reason)
            if rec.economical
            else None,
            "ranked": [_choice(c, None) for c in rec.ranked],
        }
        return Response(self.OutputSerializer(body).data)


class CostEstimateApi(_PublicApi):
    class InputSerializer(serializers.Serializer):
        class ImageIn(serializers.Serializer):
            width = serializers.IntegerField(min_value=1, max_value=100_000)
            height = serializers.IntegerField(min_value=1, max_value=100_000)
            detail = serializers.ChoiceField(choices=["auto", "low", "high"], default="auto")

        class GenerateIn(serializers.Serializer):
            n = serializers.IntegerField(min_value=1, max_value=100, default=1)
            size = serializers.CharField(max_length=16, default="1024x1024")
            quality = serializers.CharField(max_length=16, required=False)

        model = serializers.CharField(max_length=128)
        text = serializers.CharField(
            required=False, allow_blank=True, max_length=2_000_000, trim_whitespace=False
        )
        input_tokens = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10**9)
        cached_input_tokens = serializers.IntegerField(default=0, min_value=0, max_value=10**9)
        cache_write_tokens = serializers.IntegerField(default=0, min_value=0, max_value=10**9)
        images = ImageIn(many=True, required=False, default=list)
        output_tokens = serializers.IntegerField(default=0, min_value=0, max_value=10**9)
        generate_images = GenerateIn(required=False, allow_null=True)
        batch = serializers.BooleanField(default=False)
        plan = serializers.SlugField(default="standard", max_length=32)

    class OutputSerializer(serializers.Serializer):
        model = serializers.CharField()
        price_effective_from = serializers.CharField()
        usage = serializers.DictField()
        image_tokens = serializers.ListField(child=serializers.IntegerField())
        text_tokens_estimated = serializers.BooleanField()
        lines = serializers.ListField(child=serializers.DictField())
        subtotal_units = serializers.CharField()
        batch_factor = serializers.CharField()
        plan_multiplier = serializers.CharField()
        total_units = serializers.IntegerField()
        total_usd = serializers.CharField()
        notes = serializers.ListField(child=serializers.CharField())

    @extend_schema(
        request=InputSerializer, responses=OutputSerializer, operation_id="models_estimate", auth=[]
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        model = model_resolve(v["model"])
        images = tuple(ImageSpec(i["width"], i["height"], i["detail"]) for i in v["images"])
        generate = v.get("generate_images")
        if generate:
            output = Modality.IMAGE
        elif v["output_tokens"] or Modality.TEXT in model.output_modalities or not model.output_modalities:
            output = Modality.TEXT
        else:
            output = next(iter(sorted(model.output_modalities)))
        inputs = {Modality.TEXT, Modality.IMAGE} if images else {Modality.TEXT}
        guard_check(
            model=model,
            needs=RequestNeeds(input_modalities=frozenset(inputs), output=output, image_count=len(images)),
        )
        estimate = cost_estimate(
            model=model,
            input_tokens=v.get("input_tokens"),
            text=v.get("text"),
            cached_input_tokens=v["cached_input_tokens"],
            cache_write_tokens=v["cache_write_tokens"],
            images=images,
            output_tokens=v["output_tokens"],
            images_to_generate=generate["n"] if generate else 0,
            image_size=generate["size"] if generate else "1024x1024",
            image_quality=(generate.get("quality") or reference_quality(model)) if generate else "standard",
            batch=v["batch"],
            plan_multiplier=pricing_plan_multiplier(v["plan"]),
        )
        notes = [n for n in (deprecation_notice(model),) if n]
        if estimate.text_tokens_estimated:
            notes.append(
                "Text tokens are estimated (about 4 characters per token); the upstream's count is billed."
            )
        usage = estimate.usage
        body = {
            **estimate.breakdown.as_dict(),
            "usage": {
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "image_input_tokens": usage.image_input_tokens,
                "output_tokens": usage.output_tokens,
                "images_generated": usage.images_generated,
            },
            "image_tokens": list(estimate.image_tokens),
            "text_tokens_estimated": estimate.text_tokens_estimated,
            "notes": notes,
        }
        return Response(self.OutputSerializer(body).data)
