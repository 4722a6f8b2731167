"""OpenAPI schema generation (drf-spectacular) for the HackSoft-style nested serializers.

Every API class nests its own ``InputSerializer`` / ``OutputSerializer``; name their
components after the API class (``ApiKeyDetailInput``) so they never collide.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema


class AutoSchema(_AutoSchema):
    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        outer, _, inner = cls.__qualname__.rpartition(".")
        if outer and "<locals>" not in outer:
            return outer.removesuffix("Api") + inner.removesuffix("Serializer")
        return name.lstrip("_")


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (mg-…): `Authorization: Bearer <key>` or `x-api-key: <key>`.",
        }
