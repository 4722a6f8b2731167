"""Schemathesis against the management API (/api/schema/), through the WSGI app.

Authenticated with an API key of a test organization: no 5xx, documented responses match the
schema. Without credentials: every operation that declares security answers 401/403 only.
A bounded number of examples per operation keeps this well under a minute.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

EXAMPLES = 12
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


@pytest.fixture(autouse=True)
def _keep_test_connection(db):
    """Like Django's test client: the WSGI handler must not close the test's connection (its
    transaction is rolled back at the end of the test)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def owner_key(make_org):
    from accounts.services import api_key_create
    from billing.services import credit_adjust

    owner = make_org(name="Fuzz Org")
    credit_adjust(
        org_id=owner.organization_id, amount_units=1_000_000_000, reason="t", acting_user=owner.user
    )
    _key, secret = api_key_create(actor=owner, name="fuzz")
    return secret


@pytest.fixture
def owner_session(make_org):
    from django.test import Client

    owner = make_org(name="Fuzz Session Org")
    client = Client()
    client.force_login(owner.user)
    session = client.session
    session["organization_id"] = owner.organization_id
    session.save()
    return session.session_key


schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


# Paginated list views ({count, next, previous, results}) — checked below against their schema.
PAGINATED_LISTS = {
    ("GET", "/api/keys"),
    ("GET", "/api/members"),
    ("GET", "/api/invitations"),
    ("GET", "/api/ledger"),
    ("GET", "/api/topups"),
}


def _checks(case):
    return [not_a_server_error, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@FUZZ_SETTINGS
def test_management_api_fuzz_with_an_api_key(case, owner_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {owner_key}"}, checks=_checks(case))


@schema.include(method="GET").parametrize()
@FUZZ_SETTINGS
def test_management_api_fuzz_reads_with_an_owner_session(case, owner_session):
    case.call_and_validate(cookies={"sessionid": owner_session}, checks=_checks(case))


def test_paginated_lists_are_documented_as_pages():
    for method, path in sorted(PAGINATED_LISTS):
        response = schema[path][method].definition.raw["responses"]["200"]["content"]["application/json"]
        page = response["schema"]
        if "$ref" in page:
            page = schema.raw_schema["components"]["schemas"][page["$ref"].rsplit("/", 1)[-1]]
        assert {"count", "next", "previous", "results"} <= set(page["properties"]), path


def _declares_security(case) -> bool:
    security = case.operation.definition.raw.get("security")
    return bool(security) and security != [{}]


def _unroutable(case) -> bool:
    """A path parameter the URL converter refuses (``/api/keys/null``) never reaches a view."""
    from django.urls import Resolver404, resolve

    try:
        resolve(case.formatted_path)
    except Resolver404:
        return True
    return False


@schema.parametrize()
@FUZZ_SETTINGS
def test_management_api_without_credentials_is_refused(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code)
    if _declares_security(case):
        allowed = {401, 403} | ({404} if _unroutable(case) else set())
        assert response.status_code in allowed, (case.method, case.formatted_path, response.status_code)
