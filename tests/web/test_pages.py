"""Dashboard pages: roles, tenancy (another organization's object is a 404), CSV export,
fixed query counts, empty states, i18n."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import ApiKey, Role
from tests.web.helpers import days_ago, usage_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def web():
    """A Django test client logged in as ``membership.user`` with its organization current."""

    from tests.conftest import logged_in

    return lambda membership: logged_in(membership, Client)


@pytest.fixture
def two_orgs(make_org):
    from accounts.services import api_key_create, invitation_create

    mine, theirs = make_org(name="Mine"), make_org(name="Theirs")
    their_key, _s = api_key_create(actor=theirs, name="their key")
    their_record = usage_record(theirs.organization, key=their_key)
    their_invitation, _t = invitation_create(actor=theirs, email="x@example.com")
    return mine, theirs, their_key, their_record, their_invitation


PAGES = ["dashboard", "usage", "keys", "billing", "quickstart", "organization"]


@pytest.mark.parametrize("name", PAGES)
def test_pages_need_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


@pytest.mark.parametrize("name", PAGES)
def test_empty_states_render_for_a_new_organization(make_org, web, name):
    response = web(make_org()).get(reverse(name))
    assert response.status_code == 200
    assert b'class="tabs"' in response.content


def test_overview_empty_state_says_what_to_do(make_org, web):
    body = web(make_org()).get(reverse("dashboard")).content.decode()
    assert "No requests yet" in body
    assert reverse("keys") in body
    assert reverse("quickstart") in body


def test_user_without_organization_is_sent_to_create_one(make_user):
    client = Client()
    client.force_login(make_user())
    response = client.get(reverse("usage"))
    assert response.status_code == 302
    assert response["Location"] == reverse("organization")
    assert "Create an organization" in client.get(reverse("organization")).content.decode()


# --- tenancy ---------------------------------------------------------------------------------


def test_other_organizations_objects_are_404(two_orgs, web, add_member):
    mine, theirs, their_key, their_record, their_invitation = two_orgs
    client = web(mine)
    their_member = add_member(theirs.organization, Role.MEMBER)
    assert client.get(reverse("usage-detail", args=[their_record.request_id])).status_code == 404
    assert client.post(reverse("key-update", args=[their_key.pk]), {"name": "x"}).status_code == 404
    assert client.post(reverse("key-revoke", args=[their_key.pk])).status_code == 404
    assert client.post(reverse("invitation-revoke", args=[their_invitation.pk])).status_code == 404
    assert client.post(reverse("member-role", args=[their_member.pk]), {"role": "admin"}).status_code == 404
    assert client.post(reverse("member-remove", args=[their_member.pk])).status_code == 404
    their_key.refresh_from_db()
    their_invitation.refresh_from_db()
    their_member.refresh_from_db()
    assert their_key.revoked_at is None
    assert their_key.name == "their key"
    assert their_invitation.revoked_at is None
    assert their_member.role == Role.MEMBER


def test_usage_log_and_csv_show_only_the_current_organization(two_orgs, web):
    mine, _theirs, _k, their_record, _i = two_orgs
    mine_record = usage_record(mine.organization)
    client = web(mine)
    body = client.get(reverse("usage")).content.decode()
    assert mine_record.request_id in body
    assert their_record.request_id not in body
    csv_text = b"".join(client.get(reverse("usage-csv")).streaming_content).decode()
    assert mine_record.request_id in csv_text
    assert their_record.request_id not in csv_text


def test_switching_to_a_foreign_organization_is_refused(two_orgs, web):
    mine, theirs, *_rest = two_orgs
    client = web(mine)
    client.post(reverse("organization-switch"), {"slug": theirs.organization.slug})
    assert client.session["organization_id"] == mine.organization_id


# --- roles -----------------------------------------------------------------------------------


def test_member_sees_balance_but_not_statement_or_topup(make_org, add_member, web):
    owner = make_org()
    member = add_member(owner.organization, Role.MEMBER)
    body = web(member).get(reverse("billing")).content.decode()
    assert "Only owners and admins can add credit" in body
    assert 'id="ledger-table"' not in body
    assert 'id="redeem-form"' not in body
    assert web(member).post(reverse("billing-redeem"), {"code": "MG-X"}).status_code == 403
    assert web(member).post(reverse("billing-threshold"), {"threshold_usd": "5"}).status_code == 403


def test_owner_sets_low_balance_threshold(make_org, web):
    from billing.models import BillingAccount
    from billing.services import billing_account_for_org

    owner = make_org()
    billing_account_for_org(org_id=owner.organization_id)
    web(owner).post(reverse("billing-threshold"), {"threshold_usd": "2.50"})
    account = BillingAccount.objects.get(organization=owner.organization)
    assert account.low_balance_threshold_units == 2_500_000_000
    assert 'value="2.50"' in web(owner).get(reverse("billing")).content.decode()


def test_member_cannot_manage_others_keys_or_members(make_org, add_member, web):
    from accounts.services import api_key_create

    owner = make_org()
    member = add_member(owner.organization, Role.MEMBER)
    owners_key, _s = api_key_create(actor=owner, name="owner's")
    client = web(member)
    client.post(reverse("key-revoke", args=[owners_key.pk]))
    owners_key.refresh_from_db()
    assert owners_key.revoked_at is None
    client.post(reverse("member-role", args=[member.pk]), {"role": "owner"})
    member.refresh_from_db()
    assert member.role == Role.MEMBER
    assert client.post(reverse("invitation-create"), {"email": "a@b.c"}).status_code == 403
    body = client.get(reverse("organization")).content.decode()
    assert "Invite someone" not in body
    keys_page = client.get(reverse("keys")).content.decode()
    assert reverse("key-revoke", args=[owners_key.pk]) not in keys_page


def test_owner_invites_changes_role_and_removes(make_org, add_member, web, mailoutbox):
    owner = make_org()
    member = add_member(owner.organization, Role.MEMBER)
    client = web(owner)
    client.post(reverse("invitation-create"), {"email": "new@example.com", "role": "member"})
    assert owner.organization.invitations.filter(email="new@example.com").exists()
    client.post(reverse("member-role", args=[member.pk]), {"role": "admin"})
    member.refresh_from_db()
    assert member.role == Role.ADMIN
    client.post(reverse("member-remove", args=[member.pk]))
    assert not owner.organization.memberships.filter(pk=member.pk).exists()


def test_ops_is_for_staff_only(make_org, web):
    owner = make_org()
    assert web(owner).get(reverse("ops")).status_code == 404
    owner.user.is_staff = True
    owner.user.save()
    usage_record(owner.organization, when=days_ago(1))
    from inference.rollups import usage_rollups_fold

    usage_rollups_fold()
    body = web(owner).get(reverse("ops")).content.decode()
    assert "gpt-4o-mini" in body
    assert "Channel health" in body


# --- keys and quickstart -----------------------------------------------------------------------


def test_key_secret_is_shown_once_and_fills_the_samples(make_org, web, settings):
    settings.MODELGATE_PUBLIC_URL = "https://gw.example.com"
    owner = make_org()
    client = web(owner)
    response = client.post(
        reverse("keys"), {"name": "ci", "spend_cap_usd": "2.5", "rpm_limit": "10", "allowed_models": "a, b"}
    )
    assert response.status_code == 302
    body = client.get(reverse("keys")).content.decode()
    key = ApiKey.objects.get(organization=owner.organization)
    secret = body.split('id="new-secret">')[1].split("<")[0]
    assert secret.startswith(key.prefix)
    assert f'api_key="{secret}"' in body
    assert 'base_url="https://gw.example.com/v1"' in body
    assert (key.spend_cap_units, key.rpm_limit, key.allowed_models) == (2_500_000_000, 10, ["a", "b"])
    assert secret not in client.get(reverse("keys")).content.decode()  # once
    assert secret not in str(dict(client.session))
    quickstart = client.get(reverse("quickstart")).content.decode()
    assert "YOUR_MODELGATE_API_KEY" in quickstart
    assert "https://gw.example.com/v1" in quickstart


def test_key_update_and_revoke(make_org, web):
    from accounts.services import api_key_create

    owner = make_org()
    key, _s = api_key_create(actor=owner, name="old")
    client = web(owner)
    client.post(
        reverse("key-update", args=[key.pk]), {"name": "new", "tpm_limit": "1000", "spend_cap_usd": ""}
    )
    key.refresh_from_db()
    assert (key.name, key.tpm_limit, key.spend_cap_units) == ("new", 1000, None)
    client.post(reverse("key-revoke", args=[key.pk]))
    key.refresh_from_db()
    assert key.revoked_at is not None


# --- usage log, detail, CSV --------------------------------------------------------------------


def test_usage_filters_pagination_and_detail_hide_channel(make_org, web, settings):
    from accounts.services import api_key_create

    settings.DASHBOARD_PAGE_SIZE = 2
    owner = make_org()
    org = owner.organization
    key, _s = api_key_create(actor=owner, name="k1")
    ok = [usage_record(org, key=key, when=days_ago(0, h)) for h in (1, 2, 3)]
    failed = usage_record(org, model="claude-sonnet-4-5", status="upstream_error", http=502, when=days_ago(2))
    client = web(owner)
    page1 = client.get(reverse("usage")).content.decode()
    assert ok[2].request_id in page1
    assert ok[1].request_id in page1
    assert ok[0].request_id not in page1
    assert "page=2" in page1
    page3 = client.get(reverse("usage") + "?page=2").content.decode()
    assert ok[0].request_id in page3
    assert failed.request_id in page3
    errors = client.get(reverse("usage") + "?status=error").content.decode()
    assert failed.request_id in errors
    assert ok[0].request_id not in errors
    by_model = client.get(reverse("usage") + "?model=claude-sonnet-4-5").content.decode()
    assert failed.request_id in by_model
    assert ok[0].request_id not in by_model
    by_key = client.get(reverse("usage") + f"?key={key.pk}").content.decode()
    assert failed.request_id not in by_key
    since = days_ago(1).date().isoformat()
    recent = client.get(reverse("usage") + f"?since={since}").content.decode()
    assert failed.request_id not in recent
    assert ok[2].request_id in recent
    detail = client.get(reverse("usage-detail", args=[ok[0].request_id])).content.decode()
    assert "Cost breakdown" in detail
    assert "Time to first token" in detail
    assert "channel" not in detail.lower()


def test_csv_export_is_streamed_filtered_and_has_no_channel(make_org, web):
    owner = make_org()
    org = owner.organization
    usage_record(org, model="gpt-4o-mini", cost=1_234)
    usage_record(org, model="claude-sonnet-4-5", cost=5)
    response = web(owner).get(reverse("usage-csv") + "?model=gpt-4o-mini")
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["model"] for r in rows] == ["gpt-4o-mini"]
    assert rows[0]["cost_usd"] == "0.000001234"
    assert rows[0]["cost_units"] == "1234"
    assert not any("channel" in h or "upstream" in h for h in rows[0])


# --- query counts ------------------------------------------------------------------------------


# session, user, membership, the switcher's organization list, balance, roll-ups (past days),
# records (today), key names — whatever the data.
OVERVIEW_QUERIES = 8


def _overview_queries(client, django_assert_num_queries):
    # Steady state: the first page view of a process builds the cached catalogue snapshot.
    client.get(reverse("dashboard"))
    with django_assert_num_queries(OVERVIEW_QUERIES) as ctx:
        assert client.get(reverse("dashboard")).status_code == 200
    return len(ctx.captured_queries)


def test_overview_query_count_is_fixed(make_org, web, django_assert_num_queries):
    from accounts.services import api_key_create
    from inference.rollups import usage_rollups_fold

    owner = make_org()
    org = owner.organization
    client = web(owner)
    keys = [api_key_create(actor=owner, name=f"k{i}")[0] for i in range(3)]
    usage_record(org, key=keys[0], when=days_ago(1))
    usage_rollups_fold(days=3)
    small = _overview_queries(client, django_assert_num_queries)

    models = ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash", "m5", "m6", "m7", "m8"]
    for day in range(0, 30, 2):
        for i, model in enumerate(models):
            usage_record(org, key=keys[i % 3], model=model, when=days_ago(day, 1 + i))
    usage_rollups_fold(days=31)
    usage_record(org, key=keys[1], model="gpt-4o", when=days_ago(0, 0))
    large = _overview_queries(client, django_assert_num_queries)
    assert large == small


def test_usage_page_query_count_is_fixed(make_org, web, django_assert_max_num_queries):
    from accounts.services import api_key_create

    owner = make_org()
    key, _s = api_key_create(actor=owner, name="k")
    for h in range(20):
        usage_record(owner.organization, key=key, when=days_ago(0, h % 24))
    client = web(owner)
    client.get(reverse("usage"))  # warm the cached catalogue snapshot
    with django_assert_max_num_queries(10):
        assert client.get(reverse("usage")).status_code == 200


# --- i18n --------------------------------------------------------------------------------------


def test_pages_speak_simplified_chinese(make_org, web):
    client = web(make_org())
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/dashboard/"})
    body = client.get(reverse("dashboard")).content.decode()
    for text in ("概览", "用量", "API 密钥", "账单", "余额", "还没有请求"):
        assert text in body, text
