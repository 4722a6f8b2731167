"""API keys: format, hashing at rest, both authentication headers, revocation and expiry."""

import datetime as dt
import hashlib

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, api_key_update

pytestmark = pytest.mark.django_db


def test_secret_format_and_only_hash_stored(make_org):
    owner = make_org()
    key, secret = api_key_create(actor=owner, name="ci")
    assert secret.startswith("mg-")
    # 32 random bytes, URL-safe base64 without padding = 43 characters.
    assert len(secret) == 3 + 43
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert stored.prefix == secret[:10]
    # The secret itself is in no column of the row.
    for field in ApiKey._meta.concrete_fields:
        assert secret not in str(getattr(stored, field.attname))


def test_two_keys_never_collide(make_org):
    owner = make_org()
    secrets = {api_key_create(actor=owner, name=f"k{i}")[1] for i in range(20)}
    assert len(secrets) == 20


@pytest.mark.parametrize("header", ["bearer", "x-api-key"])
def test_both_headers_authenticate(make_org, key_client, header):
    owner = make_org(name="Both Headers")
    client = key_client(owner, header=header)
    response = client.get("/api/organization")
    assert response.status_code == 200, response.content
    assert response.json()["slug"] == owner.organization.slug
    assert response.json()["role"] is None  # a key is not a person


@pytest.mark.parametrize(
    "credentials",
    [
        {"HTTP_AUTHORIZATION": "Bearer mg-" + "x" * 43},
        {"HTTP_X_API_KEY": "mg-" + "y" * 43},
        {"HTTP_AUTHORIZATION": "Bearer not-a-key"},
    ],
)
def test_unknown_key_is_401_in_api_error_shape(db, credentials):
    client = APIClient()
    client.credentials(**credentials)
    response = client.get("/api/organization")
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"] == "Invalid API key."
    assert body["error"]["code"] == "authentication_failed"
    # The presented key never echoes back.
    assert "x" * 43 not in response.content.decode()


def test_revoked_key_is_refused_immediately_even_when_cached(make_org, django_capture_on_commit_callbacks):
    owner = make_org()
    key, secret = api_key_create(actor=owner, name="soon revoked")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/organization").status_code == 200  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(actor=owner, key=key)
    response = client.get("/api/organization")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_expired_key_is_refused(make_org):
    owner = make_org()
    key, secret = api_key_create(
        actor=owner, name="short", expires_at=timezone.now() + dt.timedelta(seconds=30)
    )
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=secret)
    response = client.get("/api/organization")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_last_used_is_updated_at_most_once_a_minute(make_org, django_assert_num_queries):
    owner = make_org()
    key, secret = api_key_create(actor=owner, name="touch")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/organization").status_code == 200
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    client.get("/api/organization")
    key.refresh_from_db()
    assert key.last_used_at == first


def test_limits_round_trip_through_the_api(make_org, session_client):
    owner = make_org()
    client = session_client(owner)
    response = client.post(
        "/api/keys",
        {
            "name": "limited",
            "spend_cap_units": 5_000_000_000,
            "allowed_models": ["gpt-4o", "claude-3-5-sonnet-20241022"],
            "rpm_limit": 60,
            "tpm_limit": 100_000,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["secret"].startswith("mg-")
    assert created["prefix"] == created["secret"][:10]
    listed = client.get("/api/keys").json()["results"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "secret" not in listed[0]
    patch = client.patch(
        f"/api/keys/{created['id']}", {"rpm_limit": 10, "allowed_models": None}, format="json"
    )
    assert patch.status_code == 200, patch.content
    assert patch.json()["rpm_limit"] == 10
    assert patch.json()["allowed_models"] == []
    assert patch.json()["tpm_limit"] == 100_000


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "rpm_limit": 0}, "rpm_limit"),
        ({"name": "x", "spend_cap_units": -1}, "spend_cap_units"),
        ({"name": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "x", "allowed_models": "gpt-4o"}, "allowed_models"),
        ({}, "name"),
    ],
)
def test_bad_key_input_is_400_and_creates_nothing(make_org, session_client, payload, field):
    owner = make_org()
    response = session_client(owner).post("/api/keys", payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["message"] or field in str(error["extra"])
    assert not ApiKey.objects.exists()


def test_update_evicts_cached_key_on_commit(make_org, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    owner = make_org()
    key, secret = api_key_create(actor=owner, name="cached")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    client.get("/api/organization")
    cache_key = f"apikey:{key.secret_hash}"
    assert cache.get(cache_key) is not None
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        api_key_update(actor=owner, key=key, rpm_limit=5)
    assert cache.get(cache_key) is not None  # not before the commit...
    for callback in callbacks:
        callback()
    assert cache.get(cache_key) is None  # ...but right after it
    client.get("/api/organization")
    assert cache.get(cache_key).rpm_limit == 5
