"""Canary secrets: an API key and an upstream channel key must never show up in logs (DEBUG, every
logger) of relayed requests — successes, streams, upstream failures, refusals — nor in error bodies,
admin pages, exception text or usage records."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

CHANNEL_CANARY = "sk-canary-7f3c9e1d2b4a6f8e0c1d3b5a7e9f1c3d"


@pytest.fixture
def canary(gateway):
    from accounts.services import api_key_create
    from models_catalog.models import Channel
    from models_catalog.services import catalogue_changed, channel_create

    Channel.objects.filter(provider_type="openai").update(enabled=False)  # gpt-4o only via the canary
    channel = channel_create(
        name="canary",
        provider_type="openai",
        base_url=gateway.simulator.url + "/v1",
        api_key=CHANNEL_CANARY,
        model_ids=["gpt-4o"],
        priority=100,
    )
    catalogue_changed()
    _key, secret = api_key_create(actor=gateway.owner, name="canary key")
    return channel, secret


def _haystack(caplog) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        parts.append(repr(record.__dict__))
    return "\n".join(parts)


def test_canaries_never_reach_logs_error_bodies_or_usage_records(gateway, canary, caplog):
    from inference.models import UsageRecord

    channel, secret = canary
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates here
    auth = {"Authorization": f"Bearer {secret}"}
    url = gateway.openai_base + "/chat/completions"
    bodies = []

    def chat(content, **extra):
        response = httpx.post(
            url,
            json={
                "model": "gpt-4o",
                "messages": [{"role": "user", "content": content}],
                "max_tokens": 8,
                **extra,
            },
            headers=auth,
            timeout=30,
        )
        bodies.append(response.text)
        return response

    assert chat("hello").status_code == 200
    assert chat("stream please", stream=True).status_code == 200
    assert chat("x [[sim fault=500]]").status_code >= 500  # upstream failure: retried, then refused
    assert chat("x [[sim fault=400]]").status_code == 400  # upstream 4xx passed on
    assert chat("x [[sim fault=401]]").status_code >= 400  # upstream rejects the channel key
    bad = httpx.post(
        url,
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {secret}x"},
    )
    bodies.append(bad.text)
    assert bad.status_code == 401
    anthropic = httpx.post(
        gateway.url + "/v1/messages",
        json={
            "model": "gpt-4o",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "x [[sim fault=500]]"}],
        },
        headers={"x-api-key": secret},
        timeout=30,
    )
    bodies.append(anthropic.text)
    gateway.wait_settled(1)

    logs = _haystack(caplog)
    assert len(caplog.records) > 0
    records = "\n".join(repr(r.__dict__) for r in UsageRecord.objects.filter(organization=gateway.org))
    for canary_value in (CHANNEL_CANARY, secret):
        assert canary_value not in logs
        assert canary_value not in records
        for body in bodies:
            assert canary_value not in body
    assert CHANNEL_CANARY not in repr(channel.__dict__)  # stored encrypted, not in clear
    assert CHANNEL_CANARY not in str(channel)


def test_canaries_never_in_exception_text(gateway, canary):
    from models_catalog.models import Channel

    channel, secret = canary
    channel = Channel.objects.get(pk=channel.pk)
    for exc_source in (lambda: Channel.objects.get(pk=-1), lambda: channel.full_clean()):
        try:
            exc_source()
        except Exception as exc:
            text = "".join(traceback.format_exception(exc))
            assert CHANNEL_CANARY not in text
            assert secret not in text


def test_canaries_never_on_admin_pages(gateway, canary, make_user):
    from django.test import Client
    from django.urls import NoReverseMatch, reverse

    from accounts.models import ApiKey
    from billing.models import Hold, LedgerEntry

    channel, secret = canary
    response = httpx.post(
        gateway.openai_base + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert response.status_code == 200
    admin_user = make_user(email="root@example.com")
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    key = ApiKey.objects.get(name="canary key")
    pages = [
        reverse("admin:accounts_apikey_changelist"),
        reverse("admin:accounts_apikey_change", args=[key.pk]),
        reverse("admin:models_catalog_channel_changelist"),
        reverse("admin:models_catalog_channel_change", args=[channel.pk]),
        reverse("admin:billing_ledgerentry_changelist"),
        reverse("admin:billing_hold_changelist"),
    ]
    for model in (LedgerEntry, Hold):
        for obj in model.objects.all()[:3]:
            pages.append(reverse(f"admin:billing_{model._meta.model_name}_change", args=[obj.pk]))
    try:  # noqa: SIM105
        pages.append(reverse("admin:inference_usagerecord_changelist"))
    except NoReverseMatch:
        pass  # usage records have no admin page
    for page in pages:
        html = client.get(page).content.decode()
        assert CHANNEL_CANARY not in html, page
        assert secret not in html, page
        assert CHANNEL_CANARY[-4:] not in html or "…" in html or "*" in html, page
