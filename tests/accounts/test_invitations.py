"""Invitations: e-mailed, single use, expiring, only for the invited address."""

import datetime as dt
import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.models import Invitation, Membership, Role
from accounts.services import invitation_accept, invitation_create

pytestmark = pytest.mark.django_db


def _token_from_mail() -> str:
    return re.search(r"/invitations/([A-Za-z0-9_\-]+)/", mail.outbox[-1].body).group(1)


def test_invite_mail_then_accept_via_api(
    make_org, make_user, session_client, django_capture_on_commit_callbacks
):
    owner = make_org(name="Inviters")
    with django_capture_on_commit_callbacks(execute=True):
        response = session_client(owner).post(
            "/api/invitations", {"email": "New.Person@example.com", "role": "admin"}, format="json"
        )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending"
    assert mail.outbox[-1].to == ["new.person@example.com"]
    token = _token_from_mail()
    # Only a hash is stored.
    assert not Invitation.objects.filter(token_hash=token).exists()

    invitee = make_user("new.person@example.com")
    client = session_client(owner)  # any session; switch user below
    client.force_login(invitee)
    accepted = client.post("/api/invitations/accept", {"token": token}, format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["role"] == "admin"
    assert Membership.objects.get(user=invitee).organization == owner.organization
    # Accepting switched the session to the new organization.
    assert client.get("/api/organization").json()["slug"] == owner.organization.slug


def test_token_is_single_use(make_org, make_user):
    owner = make_org()
    _invitation, token = invitation_create(actor=owner, email="once@example.com")
    user = make_user("once@example.com")
    invitation_accept(token=token, user=user)
    with pytest.raises(Exception) as excinfo:
        invitation_accept(token=token, user=user)
    assert excinfo.value.status == 410
    assert excinfo.value.code == "invitation_accepted"


def test_expired_token_is_refused(make_org, make_user):
    owner = make_org()
    invitation, token = invitation_create(actor=owner, email="late@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    with pytest.raises(Exception) as excinfo:
        invitation_accept(token=token, user=make_user("late@example.com"))
    assert excinfo.value.code == "invitation_expired"
    assert not Membership.objects.filter(user__email="late@example.com").exists()


def test_wrong_user_cannot_use_someone_elses_invitation(make_org, make_user):
    owner = make_org()
    _invitation, token = invitation_create(actor=owner, email="intended@example.com")
    with pytest.raises(Exception) as excinfo:
        invitation_accept(token=token, user=make_user("eve@example.com"))
    assert excinfo.value.status == 403
    assert Invitation.objects.get().accepted_at is None


def test_revoked_invitation_cannot_be_accepted(make_org, make_user, session_client):
    owner = make_org()
    invitation, token = invitation_create(actor=owner, email="revoked@example.com")
    assert (
        session_client(owner).post(f"/api/invitations/{invitation.pk}/revoke").json()["status"] == "revoked"
    )
    with pytest.raises(Exception) as excinfo:
        invitation_accept(token=token, user=make_user("revoked@example.com"))
    assert excinfo.value.code == "invitation_revoked"


def test_unknown_token_is_404(make_user, session_client, make_org):
    owner = make_org()
    response = session_client(owner).post("/api/invitations/accept", {"token": "nope"}, format="json")
    assert response.status_code == 404


def test_admin_may_not_invite_admins_and_existing_members_are_refused(make_org, add_member):
    owner = make_org()
    admin = add_member(owner.organization, Role.ADMIN)
    with pytest.raises(Exception) as excinfo:
        invitation_create(actor=admin, email="a2@example.com", role=Role.ADMIN)
    assert excinfo.value.status == 403
    with pytest.raises(Exception) as excinfo:
        invitation_create(actor=owner, email=admin.user.email)
    assert excinfo.value.code == "already_member"
    with pytest.raises(Exception) as excinfo:
        invitation_create(actor=owner, email="o@example.com", role=Role.OWNER)
    assert excinfo.value.status == 400


def test_invitation_web_page(make_org, client):
    owner = make_org(name="Web Invite Org")
    _invitation, token = invitation_create(actor=owner, email="web@example.com")
    response = client.get(f"/invitations/{token}/")
    assert response.status_code == 200
    assert b"Web Invite Org" in response.content
    assert client.get("/invitations/not-a-token/").status_code == 404


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_create_one_membership(make_org, make_user):
    owner = make_org()
    _invitation, token = invitation_create(actor=owner, email="race@example.com")
    user = make_user("race@example.com")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def accept():
        try:
            barrier.wait()
            invitation_accept(token=token, user=user)
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(getattr(exc, "code", repr(exc)))
        finally:
            connection.close()

    threads = [threading.Thread(target=accept) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) - {"ok"} == {"invitation_accepted"}
    assert Membership.objects.filter(user=user).count() == 1
