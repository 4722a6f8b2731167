"""Operator CLI: create_org prints the slug last, create_api_key the secret last."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from accounts.models import Membership, Organization, Role, User

pytestmark = pytest.mark.django_db


def _last_line(command, **kwargs) -> str:
    out = io.StringIO()
    call_command(command, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue().strip().splitlines()[-1]


def test_create_org_then_key_then_use_it():
    slug = _last_line("create_org", owner_email="ops@example.com", name="Ops Team", password="pw-123456789")
    org = Organization.objects.get(slug=slug)
    owner = User.objects.get(email="ops@example.com")
    assert owner.check_password("pw-123456789")
    assert Membership.objects.get(organization=org).role == Role.OWNER
    secret = _last_line("create_api_key", org=slug, name="demo")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/organization").json()["slug"] == slug


def test_create_org_reuses_an_existing_owner():
    _last_line("create_org", owner_email="twice@example.com", name="One")
    _last_line("create_org", owner_email="Twice@example.com", name="Two")
    assert User.objects.filter(email="twice@example.com").count() == 1
    assert Organization.objects.count() == 2


def test_create_api_key_for_unknown_org_fails():
    with pytest.raises(CommandError):
        call_command("create_api_key", org="nope", name="x", stdout=io.StringIO())
