"""Billing fixtures."""

from __future__ import annotations

import importlib

import pytest

from .stripe_support import WEBHOOK_SECRET, FakeCheckout, LocalStripe


@pytest.fixture(autouse=True)
def _bonus_rules(request):
    """Billing tests see the bonus rules the data migration seeds (a transactional flush removes them).

    The ledger audit after every database test lives in tests/conftest.py."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    )
    if uses_db:
        request.getfixturevalue("_django_db_helper")
        _seed_bonus_rules()


def _seed_bonus_rules() -> None:
    """The rules the data migration seeds (a transactional test's flush removes them)."""
    from django.apps import apps

    importlib.import_module("billing.migrations.0002_seed_bonus_rules").seed(apps, None)


@pytest.fixture
def org(make_org):
    """An organization (its owner's membership)."""
    return make_org("Acme")


@pytest.fixture
def grant():
    """Credit an organization through the operator service (the audited path)."""
    from billing.services import credit_adjust

    def give(org_id: int, units: int, reason: str = "test credit"):
        return credit_adjust(org_id=org_id, amount_units=units, reason=reason, acting_user=None)

    return give


@pytest.fixture
def stripe_webhook_settings(settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return settings


@pytest.fixture
def fake_checkout(settings):
    server = FakeCheckout()
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_API_BASE = server.url
    yield server
    server.stop()


@pytest.fixture(scope="module")
def localstripe(tmp_path_factory):
    emulator = LocalStripe(tmp_path_factory.mktemp("localstripe"))
    yield emulator
    emulator.stop()
