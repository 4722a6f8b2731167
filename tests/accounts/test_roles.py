"""Role permissions, checked through the API for every role, and kept in step with the README."""

from pathlib import Path

import pytest

from accounts.models import ApiKey, Invitation, Membership, Role
from accounts.permissions import API_KEY_PERMISSIONS, ROLE_PERMISSIONS, Perm
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(make_org, add_member):
    owner = make_org(name="Team")
    org = owner.organization
    return {
        Role.OWNER: owner,
        Role.ADMIN: add_member(org, Role.ADMIN),
        Role.MEMBER: add_member(org, Role.MEMBER),
    }


EXPECTED = {
    # action: roles allowed
    "create_key": {Role.OWNER, Role.ADMIN, Role.MEMBER},
    "revoke_others_key": {Role.OWNER, Role.ADMIN},
    "invite": {Role.OWNER, Role.ADMIN},
    "change_role": {Role.OWNER},
    "remove_member": {Role.OWNER, Role.ADMIN},
    "view_members": {Role.OWNER, Role.ADMIN, Role.MEMBER},
    "rename_org": {Role.OWNER, Role.ADMIN},
}


def _attempt(action, actor, team, client, make_user):
    org = actor.organization
    if action == "create_key":
        return client.post("/api/keys", {"name": "k"}, format="json")
    if action == "revoke_others_key":
        other = team[Role.OWNER] if actor.role == Role.MEMBER else team[Role.MEMBER]
        key, _ = api_key_create(actor=other, name="theirs")
        return client.post(f"/api/keys/{key.pk}/revoke")
    if action == "invite":
        return client.post(
            "/api/invitations", {"email": make_user().email.replace("@", "+new@")}, format="json"
        )
    if action == "change_role":
        return client.patch(f"/api/members/{team[Role.MEMBER].pk}", {"role": "admin"}, format="json")
    if action == "remove_member":
        victim = Membership.objects.create(organization=org, user=make_user(), role=Role.MEMBER)
        return client.delete(f"/api/members/{victim.pk}")
    if action == "view_members":
        return client.get("/api/members")
    if action == "rename_org":
        return client.patch("/api/organization", {"name": "Renamed"}, format="json")
    raise AssertionError(action)


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER])
def test_role_permission_matrix(team, session_client, make_user, action, role):
    actor = team[role]
    response = _attempt(action, actor, team, session_client(actor), make_user)
    if role in EXPECTED[action]:
        assert response.status_code in (200, 201, 204), (action, role, response.content)
    else:
        assert response.status_code == 403, (action, role, response.content)
        assert response.json()["error"]["code"] == "permission_denied"


def test_refused_actions_change_nothing(team, session_client):
    member = team[Role.MEMBER]
    client = session_client(member)
    client.post("/api/invitations", {"email": "x@example.com"}, format="json")
    client.patch(f"/api/members/{team[Role.ADMIN].pk}", {"role": "member"}, format="json")
    assert not Invitation.objects.exists()
    assert Membership.objects.get(pk=team[Role.ADMIN].pk).role == Role.ADMIN


def test_member_manages_own_keys_but_not_others(team, session_client):
    member = team[Role.MEMBER]
    client = session_client(member)
    own = client.post("/api/keys", {"name": "mine"}, format="json").json()
    assert client.patch(f"/api/keys/{own['id']}", {"rpm_limit": 5}, format="json").status_code == 200
    assert client.post(f"/api/keys/{own['id']}/revoke").status_code == 200
    theirs, _ = api_key_create(actor=team[Role.OWNER], name="owner's")
    assert client.patch(f"/api/keys/{theirs.pk}", {"rpm_limit": 5}, format="json").status_code == 403
    assert ApiKey.objects.get(pk=theirs.pk).rpm_limit is None


def test_last_owner_cannot_be_demoted_or_removed(team, session_client):
    owner = team[Role.OWNER]
    client = session_client(owner)
    response = client.patch(f"/api/members/{owner.pk}", {"role": "member"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_owner"
    assert client.delete(f"/api/members/{owner.pk}").status_code == 409
    # With a second owner, the first may step down.
    client.patch(f"/api/members/{team[Role.ADMIN].pk}", {"role": "owner"}, format="json")
    assert client.patch(f"/api/members/{owner.pk}", {"role": "member"}, format="json").status_code == 200


def test_admin_cannot_remove_an_admin_or_owner(team, session_client, add_member):
    admin = team[Role.ADMIN]
    other_admin = add_member(admin.organization, Role.ADMIN)
    client = session_client(admin)
    assert client.delete(f"/api/members/{other_admin.pk}").status_code == 403
    assert client.delete(f"/api/members/{team[Role.OWNER].pk}").status_code == 403


def test_api_key_cannot_manage_people_or_keys(team, key_client):
    client = key_client(team[Role.OWNER])
    assert client.get("/api/organization").status_code == 200
    assert client.get("/api/members").status_code == 403
    assert client.post("/api/keys", {"name": "k"}, format="json").status_code == 403
    assert client.post("/api/invitations", {"email": "a@example.com"}, format="json").status_code == 403


def test_readme_permission_table_matches_the_code():
    """The README's table is documentation of ROLE_PERMISSIONS; keep them equal."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`") and cells[0].endswith("`"):
            perm = cells[0].strip("`")
            columns = ("owner", "admin", "member", "key")
            rows[perm] = {who for who, cell in zip(columns, cells[1:5], strict=True) if cell == "✓"}
    assert set(rows) == {p.value for p in Perm}, (
        "README permission table rows differ from accounts.permissions.Perm"
    )
    for perm in Perm:
        allowed = {role for role, perms in ROLE_PERMISSIONS.items() if perm in perms}
        if perm in API_KEY_PERMISSIONS:
            allowed.add("key")
        assert rows[perm.value] == allowed, perm
