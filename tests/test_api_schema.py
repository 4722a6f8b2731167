"""The OpenAPI schema builds without warnings and documents the management API."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_schema_generates_cleanly():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    schema = out.getvalue()
    for path in ("/api/keys", "/api/members", "/api/invitations", "/api/organization"):
        assert f'"{path}' in schema


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
