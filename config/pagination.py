from rest_framework.pagination import LimitOffsetPagination


def paginated_response(request, view, queryset, serializer_class):
    """A limit/offset page of ``queryset`` rendered with ``serializer_class``."""
    paginator = LimitOffsetPagination()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def page_of(serializer_class):
    """The schema of a ``paginated_response`` page of ``serializer_class`` (for ``@extend_schema``)."""
    from drf_spectacular.utils import inline_serializer
    from rest_framework import serializers

    outer, _, inner = serializer_class.__qualname__.rpartition(".")
    base = (outer.removesuffix("Api") + inner.removesuffix("Serializer")).lstrip("_")
    return inline_serializer(
        name=f"{base}Page",
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )
