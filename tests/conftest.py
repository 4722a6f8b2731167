"""Shared fixtures.

Tests marked ``postgres`` or ``redis`` need those services. Without them they are
skipped with the reason shown in the summary; with MODELGATE_REQUIRE_SERVICES=1 (CI)
a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

REQUIRE_SERVICES = os.environ.get("MODELGATE_REQUIRE_SERVICES") == "1"


def _missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} — required in CI (MODELGATE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def redis_available() -> bool:
    if not settings.REDIS_URL:
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test")
    if item.get_closest_marker("redis") and not redis_available():
        _missing("needs Redis: set REDIS_URL=redis://127.0.0.1:6379/11")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Live servers run in threads of this process and keep connections to the test database;
    end them before pytest-django drops it (PostgreSQL refuses to drop a database in use)."""
    yield
    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
def _ledger_audit_after_each_test(request):
    """Every test that used the database ends with ``billing_audit`` finding nothing wrong:
    balance == Σ entries, held == Σ open holds, no hold ended twice — across the whole suite."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    )
    if not uses_db:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    yield
    from billing.selectors import ledger_audit

    problems = ledger_audit()
    assert problems == [], "ledger audit after the test:\n" + "\n".join(map(str, problems))


def _clear_caches() -> None:
    """The shared cache and the per-process copies kept in front of it on the relay's hot path."""
    from django.core.cache import cache

    from accounts.services import LOCAL_KEYS, api_key_touch_forget
    from models_catalog.selectors import catalogue_version_forget

    cache.clear()
    LOCAL_KEYS.clear()
    api_key_touch_forget()
    catalogue_version_forget()


@pytest.fixture(autouse=True)
def _clear_cache():
    _clear_caches()
    yield
    _clear_caches()


@pytest.fixture
def make_user(db):
    from accounts.services import user_create

    counter = iter(range(1, 10_000))

    def make(email: str | None = None, password: str = "correct-horse-battery") -> object:
        return user_create(email=email or f"user{next(counter)}@example.com", password=password)

    return make


@pytest.fixture
def make_org(make_user):
    """An organization with an owner; returns the owner's membership."""
    from accounts.models import Membership
    from accounts.services import organization_create

    def make(name: str = "Acme", owner=None) -> Membership:
        owner = owner or make_user()
        org = organization_create(owner=owner, name=name)
        return Membership.objects.select_related("organization", "user").get(organization=org, user=owner)

    return make


@pytest.fixture
def add_member(make_user):
    from accounts.models import Membership

    def add(org, role: str, user=None) -> Membership:
        user = user or make_user()
        return Membership.objects.create(organization=org, user=user, role=role)

    return add


def logged_in(membership, client_class=APIClient):
    """A test client (DRF's APIClient by default) logged in as ``membership.user`` with that
    organization current."""
    client = client_class()
    client.force_login(membership.user)
    session = client.session
    session["organization_id"] = membership.organization_id
    session.save()
    return client


@pytest.fixture
def session_client():
    """An APIClient logged in as ``membership.user`` with that organization current."""
    return logged_in


@pytest.fixture
def key_client():
    """An APIClient authenticating with a fresh API key of ``membership``'s organization."""
    from accounts.services import api_key_create

    def make(membership, header: str = "bearer") -> APIClient:
        _key, secret = api_key_create(actor=membership, name="test")
        client = APIClient()
        if header == "bearer":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        else:
            client.credentials(HTTP_X_API_KEY=secret)
        return client

    return make
