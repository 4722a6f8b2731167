"""Signup credit: $0.10 to the organization created at signup, once per verified e-mail."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.cache import cache
from django.test import Client

from accounts.models import Organization, User
from accounts.services import organization_create
from billing.models import EntryKind, LedgerEntry, SignupCreditClaim
from billing.selectors import balance_for_org
from billing.services import email_normalize, signup_credit_grant

pytestmark = pytest.mark.django_db

CREDIT = 100_000_000  # $0.10


@pytest.fixture(autouse=True)
def _mandatory_verification(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    settings.SIGNUP_CREDIT_USD = "0.10"


def signup_and_confirm(email: str, organization: str = "") -> User:
    client = Client()
    response = client.post(
        "/accounts/signup/",
        {
            "email": email,
            "password1": "a-long-secret-99",
            "password2": "a-long-secret-99",
            "organization": organization,
        },
    )
    assert response.status_code == 302, response.content
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[-1].body).group(0)
    assert client.get("/" + link.split("://", 1)[1].split("/", 1)[1]).status_code == 302
    return User.objects.get(email=email.lower())


def test_confirming_the_email_credits_the_signup_organization():
    user = signup_and_confirm("new@example.com", organization="Newco")
    org = Organization.objects.get(name="Newco")
    assert balance_for_org(org_id=org.pk).balance_units == CREDIT
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount_units, entry.acting_user) == (EntryKind.SIGNUP_CREDIT, CREDIT, user)


def test_no_credit_before_confirmation():
    Client().post(
        "/accounts/signup/",
        {"email": "wait@example.com", "password1": "a-long-secret-99", "password2": "a-long-secret-99"},
    )
    assert not LedgerEntry.objects.exists()


def test_orgs_created_later_get_nothing_and_a_second_confirmation_grants_nothing():
    user = signup_and_confirm("twice@example.com", organization="First")
    second = organization_create(owner=user, name="Second")
    # Confirming again (allauth sends the signal on every confirmation) changes nothing.
    address = EmailAddress.objects.get(user=user)
    assert signup_credit_grant(user=user, email=address.email) is None
    assert balance_for_org(org_id=second.pk).balance_units == 0
    assert LedgerEntry.objects.count() == 1


def test_the_same_address_signing_up_again_gets_nothing():
    user = signup_and_confirm("again@example.com")
    org = Organization.objects.get(created_by=user)
    assert balance_for_org(org_id=org.pk).balance_units == CREDIT
    # The account is deleted (its organization keeps its ledger); the address signs up again.
    user.delete()
    cache.clear()  # allauth rate-limits confirmation mails per address
    signup_and_confirm("again@example.com")
    assert LedgerEntry.objects.count() == 1
    # …also spelled differently: case, +tags and Gmail's dots are one mailbox.
    signup_and_confirm("Some.One+x@gmail.com")
    signup_and_confirm("someone@googlemail.com")
    assert LedgerEntry.objects.count() == 2
    assert SignupCreditClaim.objects.filter(email="someone@gmail.com").count() == 1


def test_a_user_confirming_a_second_address_gets_nothing(make_user):
    user = signup_and_confirm("main@example.com")
    assert signup_credit_grant(user=user, email="other@example.com") is None
    assert LedgerEntry.objects.count() == 1


def test_user_who_owns_no_organization_gets_nothing_yet(make_user):
    user = make_user("orphan@example.com")
    assert signup_credit_grant(user=user, email=user.email) is None
    assert not SignupCreditClaim.objects.exists()


def test_credit_goes_to_the_first_owned_org(make_user):
    user = make_user("owner@example.com")
    first = organization_create(owner=user, name="A")
    organization_create(owner=user, name="B")
    entry = signup_credit_grant(user=user, email=user.email)
    assert entry.account.organization_id == first.pk


def test_configurable_amount_and_zero_disables(make_user, settings):
    settings.SIGNUP_CREDIT_USD = "0.25"
    user = make_user("quarter@example.com")
    organization_create(owner=user, name="Q")
    assert signup_credit_grant(user=user, email=user.email).amount_units == 250_000_000
    settings.SIGNUP_CREDIT_USD = "0"
    other = make_user("zero@example.com")
    organization_create(owner=other, name="Z")
    assert signup_credit_grant(user=other, email=other.email) is None


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("A@Example.COM", "a@example.com"),
        ("a+promo@example.com", "a@example.com"),
        ("f.o.o@gmail.com", "foo@gmail.com"),
        ("foo@googlemail.com", "foo@gmail.com"),
        ("f.o.o@example.com", "f.o.o@example.com"),
    ],
)
def test_email_normalization(raw, normalized):
    assert email_normalize(raw) == normalized
