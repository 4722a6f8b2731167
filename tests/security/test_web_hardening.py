"""CSRF on every web form, login throttling (django-axes), production cookie/header settings."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PAGES = [
    "/organization/",
    "/keys/",
    "/billing/",
    "/compare/",
    "/batches/",
    "/models/",
    "/usage/",
    "/dashboard/",
    "/quickstart/",
    "/accounts/password/change/",
    "/accounts/email/",
]
ANONYMOUS_PAGES = ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/", "/models/", "/"]
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.S | re.I)


def _post_forms(html: str, page: str) -> list[str]:
    actions = []
    for attrs, inner in FORM.findall(html):
        if not re.search(r'method\s*=\s*["\']?post', attrs, re.I):
            continue
        assert "csrfmiddlewaretoken" in inner, f"a POST form on {page} has no CSRF token: {attrs}"
        match = re.search(r'action\s*=\s*["\']([^"\']*)["\']', attrs)
        action = (match.group(1) if match else "") or page
        if action.startswith("/"):
            actions.append(action.replace("&amp;", "&"))
    return actions


def _logged_in(make_org, enforce: bool) -> Client:
    owner = make_org(name="CSRF Org")
    client = Client(enforce_csrf_checks=enforce)
    client.force_login(owner.user)
    session = client.session
    session["organization_id"] = owner.organization_id
    session.save()
    return client


def test_every_post_form_refuses_a_post_without_a_csrf_token(make_org):
    from accounts.services import api_key_create

    reader = _logged_in(make_org, enforce=False)
    owner = reader.session["organization_id"]
    from accounts.models import Membership

    membership = Membership.objects.get(organization_id=owner)
    api_key_create(actor=membership, name="a key so the key forms render")
    found: dict[str, str] = {}
    for page in PAGES:
        response = reader.get(page)
        if response.status_code == 200:
            for action in _post_forms(response.content.decode(), page):
                found.setdefault(action, page)
    anonymous = Client()
    for page in ANONYMOUS_PAGES:
        response = anonymous.get(page)
        if response.status_code == 200:
            for action in _post_forms(response.content.decode(), page):
                found.setdefault(action, page)
    assert len(found) >= 8, found  # the pages above hold at least this many distinct forms

    attacker = Client(enforce_csrf_checks=True)
    attacker.cookies = reader.cookies  # the victim's session cookie, but no token
    for action, page in sorted(found.items()):
        response = attacker.post(action, {"name": "x", "email": "x@example.com"})
        assert response.status_code == 403, f"{action} (form on {page}) accepted a POST without CSRF token"


# --- login throttling ---------------------------------------------------------------------------


def _login(client, email, password):
    return client.post("/accounts/login/", {"login": email, "password": password})


def test_failed_logins_lock_out_and_a_success_resets(make_user, settings):
    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 3
    user = make_user(email="victim@example.com", password="correct-horse-battery")
    user.emailaddress_set.create(email=user.email, verified=True, primary=True)
    client = Client()

    # Two failures, then a success: the count is reset.
    for _ in range(2):
        assert _login(client, "victim@example.com", "wrong").status_code == 200
    assert _login(client, "victim@example.com", "correct-horse-battery").status_code == 302
    assert not AccessAttempt.objects.filter(
        username="victim@example.com", failures_since_start__gt=0
    ).exists()
    client.logout()

    # Three failures lock (e-mail, IP) out (the third answers 429); afterwards even the right
    # password is refused: allauth shows its form again and no session is logged in.
    for _ in range(2):
        assert _login(client, "victim@example.com", "wrong").status_code == 200
    assert _login(client, "victim@example.com", "wrong").status_code == 429
    assert _login(client, "victim@example.com", "correct-horse-battery").status_code in (200, 429)
    assert "_auth_user_id" not in client.session

    # Another address from the same IP is not locked out (lockout is per e-mail + IP).
    other = make_user(email="other@example.com", password="correct-horse-battery")
    other.emailaddress_set.create(email=other.email, verified=True, primary=True)
    assert _login(Client(), "other@example.com", "correct-horse-battery").status_code == 302

    # An operator reset (``axes_reset``) lifts the lockout.
    from axes.utils import reset

    reset(username="victim@example.com")
    # allauth also rate-limits failed logins per address (its own counter, in the cache): clear it
    # too, so this shows the axes lockout alone is lifted.
    from django.core.cache import cache

    cache.clear()
    assert _login(client, "victim@example.com", "correct-horse-battery").status_code == 302


def test_admin_login_is_throttled_too(make_user, settings):
    settings.AXES_FAILURE_LIMIT = 2
    staff = make_user(email="staff@example.com")
    staff.is_staff = True
    staff.save()
    client = Client()
    assert (
        client.post("/admin/login/", {"username": "staff@example.com", "password": "no"}).status_code == 200
    )
    assert (
        client.post("/admin/login/", {"username": "staff@example.com", "password": "no"}).status_code == 429
    )


# --- production settings ------------------------------------------------------------------------


def test_production_settings_are_hardened(monkeypatch):
    import importlib
    import sys

    monkeypatch.setenv("DJANGO_SECRET_KEY", "x" * 50)
    monkeypatch.setenv("DJANGO_ALLOWED_HOSTS", "gateway.example.com")
    monkeypatch.setenv("FIELD_ENCRYPTION_KEY", "bW9kZWxnYXRlLWVtYmVkZGVkLWRlZmF1bHQta2V5ISE=")
    sys.modules.pop("config.settings.production", None)
    prod = importlib.import_module("config.settings.production")
    try:
        assert prod.DEBUG is False
        assert prod.SESSION_COOKIE_SECURE
        assert prod.CSRF_COOKIE_SECURE
        assert prod.SESSION_COOKIE_HTTPONLY
        assert prod.SESSION_COOKIE_SAMESITE == "Lax"
        assert prod.SECURE_SSL_REDIRECT
        assert prod.SECURE_HSTS_SECONDS >= 60 * 60 * 24 * 30
        assert prod.SECURE_CONTENT_TYPE_NOSNIFF
        assert prod.X_FRAME_OPTIONS == "DENY"
        assert prod.SECURE_REFERRER_POLICY == "strict-origin-when-cross-origin"
        assert prod.SECURE_CROSS_ORIGIN_OPENER_POLICY == "same-origin"
        assert prod.AXES_ENABLED
        assert "axes.middleware.AxesMiddleware" in prod.MIDDLEWARE
        assert prod.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    finally:
        sys.modules.pop("config.settings.production", None)


def test_security_headers_are_sent(client, settings):
    settings.SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
    response = client.get("/accounts/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"
