"""Org B never sees or changes org A's objects: 404 (not 403), and lists never include them.

The complete matrix — every route that takes an object id, every list, every role — is
tests/security/test_isolation_matrix.py; new object endpoints go there.
"""

import pytest

from accounts.models import ApiKey, Invitation, Membership, Role
from accounts.services import api_key_create, invitation_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(make_org, add_member):
    a = make_org(name="Org A")
    add_member(a.organization, Role.MEMBER)
    b = make_org(name="Org B")
    key_a, _ = api_key_create(actor=a, name="A's key")
    invitation_a, _ = invitation_create(actor=a, email="invitee-a@example.com")
    member_a = Membership.objects.filter(organization=a.organization).exclude(pk=a.pk).get()
    return {"a": a, "b": b, "key": key_a, "invitation": invitation_a, "member": member_a}


# (method, url template, body) for every endpoint that takes an object id.
MATRIX = [
    ("get", "/api/keys/{key}", None),
    ("patch", "/api/keys/{key}", {"name": "stolen"}),
    ("post", "/api/keys/{key}/revoke", None),
    ("get", "/api/members/{member}", None),
    ("patch", "/api/members/{member}", {"role": "admin"}),
    ("delete", "/api/members/{member}", None),
    ("post", "/api/invitations/{invitation}/revoke", None),
]


@pytest.mark.parametrize(("method", "url", "body"), MATRIX)
def test_session_of_org_b_gets_404_on_org_a_objects(two_orgs, session_client, method, url, body):
    client = session_client(two_orgs["b"])
    ids = {name: two_orgs[name].pk for name in ("key", "member", "invitation")}
    response = getattr(client, method)(url.format(**ids), body, format="json")
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    # Nothing changed.
    key = ApiKey.objects.get(pk=two_orgs["key"].pk)
    assert (key.name, key.revoked_at) == ("A's key", None)
    assert Membership.objects.get(pk=two_orgs["member"].pk).role == Role.MEMBER
    assert Invitation.objects.get(pk=two_orgs["invitation"].pk).status == "pending"


@pytest.mark.parametrize(("method", "url", "body"), [m for m in MATRIX if m[1].startswith("/api/keys")])
def test_key_of_org_b_gets_404_on_org_a_keys(two_orgs, key_client, method, url, body):
    client = key_client(two_orgs["b"])
    response = getattr(client, method)(url.format(key=two_orgs["key"].pk), body, format="json")
    assert response.status_code in (404, 403)
    if method == "get":
        assert response.status_code == 404
    assert ApiKey.objects.get(pk=two_orgs["key"].pk).revoked_at is None


@pytest.mark.parametrize("url", ["/api/keys", "/api/members", "/api/invitations"])
def test_lists_never_include_other_orgs(two_orgs, session_client, url):
    a_ids = {
        "/api/keys": {two_orgs["key"].pk},
        "/api/members": set(
            Membership.objects.filter(organization=two_orgs["a"].organization).values_list("pk", flat=True)
        ),
        "/api/invitations": {two_orgs["invitation"].pk},
    }[url]
    rows = session_client(two_orgs["b"]).get(url).json()["results"]
    assert not a_ids & {row["id"] for row in rows}
    own = session_client(two_orgs["a"]).get(url).json()["results"]
    assert a_ids <= {row["id"] for row in own}


def test_key_lists_only_its_own_org(two_orgs, key_client):
    rows = key_client(two_orgs["b"]).get("/api/keys").json()["results"]
    assert two_orgs["key"].pk not in {row["id"] for row in rows}
    assert {row["name"] for row in rows} == {"test"}


def test_cannot_switch_into_an_org_you_are_not_in(two_orgs, session_client):
    client = session_client(two_orgs["b"])
    response = client.post(
        "/api/organizations/switch", {"slug": two_orgs["a"].organization.slug}, format="json"
    )
    assert response.status_code == 404
    assert client.get("/api/organization").json()["slug"] == two_orgs["b"].organization.slug


def test_forged_session_org_falls_back_to_own_org(two_orgs, session_client):
    client = session_client(two_orgs["b"])
    session = client.session
    session["organization_id"] = two_orgs["a"].organization_id
    session.save()
    assert client.get("/api/organization").json()["slug"] == two_orgs["b"].organization.slug


def test_switching_between_own_orgs(make_org, make_user, session_client):
    user = make_user()
    first = make_org(name="First", owner=user)
    second = make_org(name="Second", owner=user)
    client = session_client(first)
    listed = client.get("/api/organizations").json()
    assert {o["slug"] for o in listed} == {first.organization.slug, second.organization.slug}
    assert (
        client.post(
            "/api/organizations/switch", {"slug": second.organization.slug}, format="json"
        ).status_code
        == 200
    )
    assert client.get("/api/organization").json()["slug"] == second.organization.slug
