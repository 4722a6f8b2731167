"""/healthz and /readyz: JSON detail, 200 when ready, 503 when a dependency is missing."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def test_healthz_answers_without_io(django_assert_num_queries):
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_with_catalogue_loaded(catalogue):
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "cache", "broker", "catalogue"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["catalogue"]["models"] > 0


def test_readyz_503_when_catalogue_is_empty():
    from models_catalog.services import catalogue_changed

    catalogue_changed()
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["catalogue"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True


def test_readyz_503_when_broker_unreachable(catalogue, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.READYZ_TIMEOUT_SECONDS = 0.5
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["broker"]["ok"] is False
    assert body["checks"]["catalogue"]["ok"] is True
    assert body["checks"]["broker"]["ms"] < 5000
