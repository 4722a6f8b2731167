"""Management API for inference jobs (``/api/compare``). Session or API key; the organization
comes from ``api_context(request)``; another organization's jobs are 404."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api_context import api_context
from billing.money import format_usd

from .jobs import compare


class _ResultOut(serializers.Serializer):
    model = serializers.CharField()
    status = serializers.CharField(help_text="pending, succeeded or failed.")
    output = serializers.CharField()
    latency_ms = serializers.IntegerField(allow_null=True)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_units = serializers.IntegerField(help_text="Charged, nano-USD (10⁻⁹ USD).")
    cost = serializers.SerializerMethodField(help_text="Charged, USD decimal string.")
    request_id = serializers.CharField()
    error = serializers.SerializerMethodField()

    def get_cost(self, obj) -> str:
        return format_usd(obj.cost_units)

    def get_error(self, obj) -> dict | None:
        if not obj.error_code and not obj.error_message:
            return None
        return {"code": obj.error_code, "message": obj.error_message, "status": obj.status_code}


class _CompareOut(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    status = serializers.SerializerMethodField(help_text="running or completed.")
    created_at = serializers.DateTimeField()
    prompt = serializers.CharField()
    has_image = serializers.SerializerMethodField()
    max_tokens = serializers.IntegerField()
    total_cost_units = serializers.SerializerMethodField()
    results = _ResultOut(many=True)

    def get_status(self, obj) -> str:
        return compare.compare_status(obj)

    def get_has_image(self, obj) -> bool:
        return bool(obj.image)

    def get_total_cost_units(self, obj) -> int:
        return sum(r.cost_units for r in obj.results.all())


class CompareCreateApi(APIView):
    class InputSerializer(serializers.Serializer):
        prompt = serializers.CharField(max_length=100_000, trim_whitespace=False)
        models = serializers.ListField(
            child=serializers.CharField(max_length=128), min_length=1, max_length=12
        )
        image = serializers.CharField(
            required=False, allow_blank=True, help_text="One image as a data:image/…;base64 URL."
        )
        max_tokens = serializers.IntegerField(required=False, min_value=1, max_value=32_000)

    class OutputSerializer(_CompareOut):
        pass

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, operation_id="compare_create")
    def post(self, request):
        ctx = api_context(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        job = compare.compare_create(
            org=ctx.org,
            models=v["models"],
            prompt=v["prompt"],
            image=v.get("image", ""),
            max_tokens=v.get("max_tokens"),
            api_key=ctx.api_key,
            user=request.user if ctx.membership else None,
        )
        job = compare.compare_get(org_id=ctx.org.pk, public_id=job.public_id)
        return Response(self.OutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class CompareDetailApi(APIView):
    class OutputSerializer(_CompareOut):
        pass

    @extend_schema(responses=OutputSerializer, operation_id="compare_get")
    def get(self, request, compare_id: str):
        ctx = api_context(request)
        job = compare.compare_get(org_id=ctx.org.pk, public_id=compare_id)
        return Response(self.OutputSerializer(job).data)
