"""Fixtures of the money-path simulation: the live gateway and simulator (tests/inference), real
Celery workers (tests/jobs), localstripe and a Checkout Sessions endpoint (tests/billing)."""

from __future__ import annotations

import importlib

import pytest
import stripe

from tests.billing.stripe_support import LOCALSTRIPE_KEY, WEBHOOK_SECRET, FakeCheckout, LocalStripe
from tests.inference.conftest import catalogue, gateway, gateway_server, simulator  # noqa: F401
from tests.jobs.conftest import workers  # noqa: F401

from .driver import Env, worker_env

DEAD_URL = "http://127.0.0.1:9/nowhere"
HOLD_TTL_SECONDS = 10  # short, so that the real hold-expiry task has holds to end


@pytest.fixture(scope="module")
def localstripe_emulator(tmp_path_factory):
    emulator = LocalStripe(tmp_path_factory.mktemp("localstripe"))
    emulator.configure_webhook(DEAD_URL)  # the simulation delivers the events itself
    yield emulator
    emulator.stop()


@pytest.fixture
def sim_env(gateway, workers, localstripe_emulator, make_org, session_client, settings):  # noqa: F811
    from django.apps import apps
    from django.conf import settings as django_settings

    importlib.import_module("billing.migrations.0002_seed_bonus_rules").seed(apps, None)
    checkout = FakeCheckout()
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_API_BASE = checkout.url
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.BILLING_HOLD_TTL_SECONDS = HOLD_TTL_SECONDS
    workers.start(beat=True, concurrency=2, **worker_env())
    yield Env(
        gateway_url=gateway.url,
        workers=workers,
        localstripe=localstripe_emulator,
        stripe_client=stripe.StripeClient(LOCALSTRIPE_KEY, base_addresses={"api": localstripe_emulator.url}),
        make_org=make_org,
        session_client=session_client,
        log_dir=django_settings.DATA_DIR / "sim",
    )
    checkout.stop()
