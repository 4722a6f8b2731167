"""Signup with allauth creates a user, an organization and an owner membership."""

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db


def _signup(client: Client, email: str, organization: str = "") -> object:
    return client.post(
        "/accounts/signup/",
        {
            "email": email,
            "password1": "a-long-secret-99",
            "password2": "a-long-secret-99",
            "organization": organization,
        },
    )


def test_signup_page_renders(client):
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    assert b"Organization name" in response.content


def test_signup_creates_user_org_and_owner_membership(client):
    response = _signup(client, "Founder@Example.com", organization="Founders Inc")
    assert response.status_code == 302, response.content
    user = User.objects.get()
    assert user.email == "founder@example.com"
    org = Organization.objects.get()
    assert org.name == "Founders Inc"
    assert org.slug.startswith("founders-inc-")
    membership = Membership.objects.get()
    assert (membership.user, membership.organization, membership.role) == (user, org, Role.OWNER)


def test_signup_without_org_name_names_it_after_the_user(client):
    _signup(client, "solo@example.com")
    assert Organization.objects.get().name == "solo@example.com's organization"


def test_email_verification_then_login(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    _signup(client, "verify@example.com")
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body).group(0)
    # Unverified: logging in is held at the verification step.
    login = Client().post("/accounts/login/", {"login": "verify@example.com", "password": "a-long-secret-99"})
    assert login.status_code == 302
    assert "confirm-email" in login["Location"] or "verification" in login["Location"]
    path = link.split("://", 1)[1].split("/", 1)[1]
    confirmed = client.get("/" + path)
    assert confirmed.status_code == 302
    from allauth.account.models import EmailAddress

    assert EmailAddress.objects.get(email="verify@example.com").verified
    fresh = Client()
    login = fresh.post("/accounts/login/", {"login": "verify@example.com", "password": "a-long-secret-99"})
    assert login.status_code == 302
    assert fresh.get("/dashboard/").status_code == 200


def test_duplicate_email_creates_nothing_and_does_not_reveal_the_account(client):
    _signup(client, "dup@example.com")
    first = client.get("/accounts/confirm-email/")
    mail.outbox.clear()
    response = _signup(Client(), "DUP@example.com", organization="Second")
    # Same answer as a fresh signup (no account enumeration)...
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert first.status_code == 200
    # ...but nothing is created.
    assert User.objects.count() == 1
    assert Organization.objects.count() == 1


def test_password_reset_sends_a_mail(client):
    _signup(client, "forgetful@example.com")
    mail.outbox.clear()
    response = Client().post("/accounts/password/reset/", {"email": "forgetful@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
