"""The tenant isolation matrix (issue #9, part 1).

Two organizations, A and B, each own one of every tenant object (API key, member,
invitation, usage record, ledger entry, top-up, batch file, batch, compare job). Then:

- every route that takes an object id (in the path, the query or the body) answers org B —
  its owner's session, its member's session, its API key — exactly as it answers an id
  that does not exist: 404 wherever B's credential reaches the lookup, never 200, 403 or
  500 because the object is A's; A's row is unchanged afterwards. The same request by A
  succeeds (so the 404 is about the tenant, not a wrong URL);
- every list endpoint, list page and the CSV export shows each organization its own
  objects and never the other's;
- every route of the project with a kwarg is in the matrix or in a commented exclusion
  list, so a new route cannot escape;
- every (role, permission) of ``accounts.permissions`` is exercised through the real
  endpoints, and the expectation is checked against both that module and a hand-written
  copy of the README table below.

The two organizations are built once for the module (inside one transaction that is rolled
back at the end, the way ``TestCase.setUpTestData`` works); each test runs in its own
savepoint, so what a test changes is undone before the next one.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from accounts.models import ApiKey, Invitation, Membership, Organization, Role
from accounts.permissions import API_KEY_PERMISSIONS, ROLE_PERMISSIONS, Perm
from billing.models import LedgerEntry, TopUp
from inference.models import UsageRecord
from inference.models_jobs import Batch, CompareJob, JobFile
from tests.conftest import logged_in
from tests.jobs.helpers import chat_line, jsonl
from tests.web.helpers import usage_record

pytestmark = pytest.mark.django_db

USD = 1_000_000_000


# --- the two organizations ----------------------------------------------------------------------


@dataclass
class Tenant:
    tag: str
    org: Organization
    owner: Membership
    admin: Membership
    member: Membership
    secret: str  # an API key of the organization, used as a credential
    objects: dict = field(default_factory=dict)  # kind → model instance
    markers: dict = field(default_factory=dict)  # list route → strings only this tenant's lists show

    def ident(self, kind: str):
        """The id a URL or body carries for this tenant's object of ``kind``."""
        obj = self.objects[kind]
        return obj.slug if kind == "org" else getattr(obj, ID_FIELD.get(kind, "pk"))


# The id a route takes for each kind of object (the primary key unless named here).
ID_FIELD = {"usage": "request_id", "file": "public_id", "batch": "public_id", "compare": "public_id"}
MODELS = {
    "key": ApiKey,
    "member": Membership,
    "invitation": Invitation,
    "usage": UsageRecord,
    "entry": LedgerEntry,
    "topup": TopUp,
    "file": JobFile,
    "batch": Batch,
    "compare": CompareJob,
    "org": Organization,
}
# An id of the right shape that no organization owns.
MISSING = {
    "key": 2_000_000_001,
    "member": 2_000_000_002,
    "invitation": 2_000_000_003,
    "usage": "req_no_such_request",
    "entry": 2_000_000_004,
    "topup": 2_000_000_005,
    "file": "file-000000000000000000000000",
    "batch": "batch_000000000000000000000000",
    "compare": "cmp_000000000000000000000000",
    "org": "no-such-organization",
}


def _tenant(tag: str, amount_usd: str, credit_usd: int) -> Tenant:
    from accounts.services import api_key_create, invitation_create, organization_create, user_create
    from billing.payments import topup_checkout_create
    from billing.services import credit_adjust
    from inference.jobs.batches import batch_create
    from inference.jobs.compare import compare_create
    from inference.jobs.files import file_create

    def user(role: str):
        return user_create(email=f"{role}-{tag.lower()}@iso.example.com", password="correct-horse-battery")

    owner_user = user("owner")
    org = organization_create(owner=owner_user, name=f"Isolation {tag}")
    owner = Membership.objects.select_related("organization", "user").get(organization=org, user=owner_user)
    admin = Membership.objects.create(organization=org, user=user("admin"), role=Role.ADMIN)
    member = Membership.objects.create(organization=org, user=user("member"), role=Role.MEMBER)
    _cred, secret = api_key_create(actor=owner, name=f"{tag} credential")
    t = Tenant(tag=tag, org=org, owner=owner, admin=admin, member=member, secret=secret)

    key, _s = api_key_create(actor=member, name=f"{tag}-target-key")
    invitation, _token = invitation_create(actor=owner, email=f"invitee-{tag.lower()}@iso.example.com")
    record = usage_record(
        org, key=key, request_id=f"req_iso_{tag}_{org.pk}", model=f"iso-model-{tag.lower()}"
    )
    entry = credit_adjust(
        org_id=org.pk, amount_units=credit_usd * USD, reason=f"ledger-marker-{tag}", acting_user=None
    )
    topup = topup_checkout_create(org_id=org.pk, amount_usd=Decimal(amount_usd), acting_user=owner_user)
    body = jsonl([chat_line(i) for i in range(2)])
    upload = file_create(
        org_id=org.pk, purpose="batch", filename=f"{tag}.jsonl", content=io.BytesIO(body), size=len(body)
    )
    # A second file, so that listing files "after" the first one has something to show.
    spare = file_create(
        org_id=org.pk, purpose="batch", filename=f"{tag}-2.jsonl", content=io.BytesIO(body), size=len(body)
    )
    cred = ApiKey.objects.get(organization=org, name=f"{tag} credential")
    batch = batch_create(key=cred, input_file_id=upload.public_id, endpoint="/v1/chat/completions")
    compare = compare_create(
        org=org, models=["gpt-4o-mini", "gpt-4o"], prompt=f"compare-marker-{tag}", user=owner_user
    )
    t.objects = {
        "key": key,
        "member": member,
        "invitation": invitation,
        "usage": record,
        "entry": entry,
        "topup": topup,
        "file": upload,
        "spare_file": spare,
        "batch": batch,
        "compare": compare,
        "org": org,
    }
    members = [m.user.email for m in (owner, admin, member)]
    t.markers = {
        "api-keys": [key.pk],
        "api-members": [owner.pk, admin.pk, member.pk],
        "api-invitations": [invitation.pk],
        "api-ledger": [entry.pk],
        "api-topups": [topup.pk],
        "api-organizations": [org.slug],
        "api-balance": [entry.balance_after_units],
        "v1-files": [upload.public_id, spare.public_id],
        "v1-batches": [batch.public_id],
        "keys": [key.name, key.prefix],
        "organization": [*members, invitation.email],
        "usage": [record.request_id],
        "usage-csv": [record.request_id],
        "billing": [f"ledger-marker-{tag}", amount_usd],
        "compare": [compare.public_id],
        "batches": [batch.public_id],
        "dashboard": [record.model],  # spend per model, from today's records
    }
    return t


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Org A and org B with one of every object, committed to nothing: the module's transaction
    is rolled back at the end (tests run in savepoints inside it)."""
    from inference.jobs.files import jobs_storage
    from models_catalog.models import AiModel
    from models_catalog.services import catalogue_changed, catalogue_seed
    from tests.billing.stripe_support import FakeCheckout

    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            if not AiModel.objects.exists():  # a transactional test elsewhere may have flushed it
                catalogue_seed()
            catalogue_changed()
            stripe = FakeCheckout()
            try:
                with override_settings(STRIPE_SECRET_KEY="sk_test_fake", STRIPE_API_BASE=stripe.url):
                    tenants = {"A": _tenant("A", "123.45", 20), "B": _tenant("B", "67.89", 30)}
            finally:
                stripe.stop()
            yield tenants
        finally:
            names = list(JobFile.objects.values_list("storage_name", flat=True))
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            for name in names:
                jobs_storage().delete(name)


def _snapshot(kind: str, obj) -> dict | None:
    """The object's whole row (None once deleted)."""
    return MODELS[kind].objects.filter(pk=obj.pk).values().first()


# --- clients ------------------------------------------------------------------------------------


def session(membership: Membership) -> APIClient:
    return logged_in(membership)


def keyed(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _client(tenant: Tenant, actor: str) -> APIClient:
    return keyed(tenant.secret) if actor == "key" else session(getattr(tenant, actor))


# --- the matrix ---------------------------------------------------------------------------------

OK = "ok"  # A's own request succeeds: 2xx (or a redirect, for the web forms)
NA = None  # this credential is not one the route accepts; B must still learn nothing


@dataclass(frozen=True)
class Case:
    """One (route, method) that takes ``kind``'s id; ``expect`` is what each of B's credentials
    gets on A's object: 404, or 403/redirect where the credential is refused before any lookup
    (then the same answer as for an id that does not exist — asserted for every entry)."""

    route: str
    method: str
    kind: str
    expect: dict  # actor ("owner", "member", "key") → status B gets on A's object
    own: dict  # actor ("owner", "key") → status for A on its own object (OK = success), or None
    where: str = "path"  # where the id travels: path kwarg, "query" (?after=) or "body"
    body: dict | None = None
    mutates: bool = False  # A's own request changes (or deletes) the row

    @property
    def id(self) -> str:
        return f"{self.route}:{self.method}" + ("" if self.where == "path" else f":{self.where}")


ALL_REACH_LOOKUP = {"owner": 404, "member": 404, "key": 404}  # every credential gets to the lookup
SESSION_ONLY_API = {"owner": 404, "member": 404, "key": 403}  # SessionOnly refuses any key first
WEB = {"owner": 404, "member": 404, "key": 302}  # a key is no web credential: the login redirect
V1 = {"owner": 401, "member": 401, "key": 404}  # /v1 takes keys only: a session is unauthenticated

MATRIX = [
    # --- management API (/api/), session or key ---
    Case("api-key-detail", "get", "key", ALL_REACH_LOOKUP, {"owner": OK, "key": OK}),
    Case(
        "api-key-detail",
        "patch",
        "key",
        ALL_REACH_LOOKUP,
        {"owner": OK, "key": 403},  # a key may read keys, not change them
        body={"name": "stolen", "rpm_limit": 1},
        mutates=True,
    ),
    Case("api-key-revoke", "post", "key", ALL_REACH_LOOKUP, {"owner": OK, "key": 403}, mutates=True),
    Case("api-member-detail", "get", "member", SESSION_ONLY_API, {"owner": OK, "key": 403}),
    Case(
        "api-member-detail",
        "patch",
        "member",
        SESSION_ONLY_API,
        {"owner": OK, "key": 403},
        body={"role": "admin"},
        mutates=True,
    ),
    Case("api-member-detail", "delete", "member", SESSION_ONLY_API, {"owner": OK, "key": 403}, mutates=True),
    Case(
        "api-invitation-revoke",
        "post",
        "invitation",
        SESSION_ONLY_API,
        {"owner": OK, "key": 403},
        mutates=True,
    ),
    # billing.view: members and keys are refused before the lookup, for any id
    Case(
        "api-ledger-entry",
        "get",
        "entry",
        {"owner": 404, "member": 403, "key": 403},
        {"owner": OK, "key": 403},
    ),
    Case(
        "api-topup-detail",
        "get",
        "topup",
        {"owner": 404, "member": 403, "key": 403},
        {"owner": OK, "key": 403},
    ),
    Case("api-compare-detail", "get", "compare", ALL_REACH_LOOKUP, {"owner": OK, "key": OK}),
    Case(
        "api-organizations-switch",
        "post",
        "org",
        SESSION_ONLY_API,
        {"owner": OK, "key": 403},
        where="body",
        body={"slug": "{id}"},
    ),
    # --- dashboard pages and forms, session only ---
    Case(
        "invitation-revoke",
        "post",
        "invitation",
        {**WEB, "member": 403},  # members.invite is checked before the lookup
        {"owner": OK, "key": NA},
        mutates=True,
    ),
    Case(
        "member-role", "post", "member", WEB, {"owner": OK, "key": NA}, body={"role": "admin"}, mutates=True
    ),
    Case("member-remove", "post", "member", WEB, {"owner": OK, "key": NA}, mutates=True),
    Case("key-update", "post", "key", WEB, {"owner": OK, "key": NA}, body={"name": "stolen"}, mutates=True),
    Case("key-revoke", "post", "key", WEB, {"owner": OK, "key": NA}, mutates=True),
    Case("usage-detail", "get", "usage", WEB, {"owner": OK, "key": NA}),
    Case("compare-detail", "get", "compare", WEB, {"owner": OK, "key": NA}),
    # The web switch answers every slug it cannot switch to with a redirect and a message;
    # A's slug and an unknown one get the same answer, and the current organization stays.
    Case(
        "organization-switch",
        "post",
        "org",
        {"owner": 302, "member": 302, "key": 302},
        {"owner": OK, "key": NA},
        where="body",
        body={"slug": "{id}"},
    ),
    # --- /v1 files and batches (OpenAI shapes), key only ---
    Case("v1-file-detail", "get", "file", V1, {"owner": NA, "key": OK}),
    Case("v1-file-detail", "delete", "file", V1, {"owner": NA, "key": OK}, mutates=True),
    Case("v1-file-content", "get", "file", V1, {"owner": NA, "key": OK}),
    Case("v1-batch-detail", "get", "batch", V1, {"owner": NA, "key": OK}),
    Case("v1-batch-cancel", "post", "batch", V1, {"owner": NA, "key": OK}, mutates=True),
    Case("v1-files", "get", "file", V1, {"owner": NA, "key": OK}, where="query"),
    Case("v1-batches", "get", "batch", V1, {"owner": NA, "key": OK}, where="query"),
    Case(
        "v1-batches",
        "post",
        "file",
        V1,
        {"owner": NA, "key": OK},
        where="body",
        body={"input_file_id": "{id}", "endpoint": "/v1/chat/completions"},
    ),
]


def _request(client: APIClient, case: Case, ident):
    path_kwargs = {}
    if case.where == "path":
        route_kwargs = _route_kwargs()[case.route]
        path_kwargs = {route_kwargs[0]: ident}
    url = reverse(case.route, kwargs=path_kwargs)
    if case.where == "query":
        url += f"?after={ident}"
    body = None
    if case.body is not None:
        body = {k: (ident if v == "{id}" else v) for k, v in case.body.items()}
    if case.route.startswith(("api-", "v1-")):
        return getattr(client, case.method)(url, body, format="json")
    return getattr(client, case.method)(url, body or {})


def _shape(response, ident) -> tuple:
    """What a caller can tell from an answer, with the id it asked about blanked out."""
    code = None
    if response.get("Content-Type", "").startswith("application/json"):
        try:
            code = (response.json().get("error") or {}).get("code")
        except (ValueError, AttributeError):
            code = "unparseable"
    where = response.get("Location", "").split("?")[0].replace(str(ident), "{id}")
    return response.status_code, code, where


def _success(response) -> bool:
    return 200 <= response.status_code < 400 and "/accounts/login/" not in response.get("Location", "")


@pytest.mark.parametrize("actor", ["owner", "member", "key"])
@pytest.mark.parametrize("case", MATRIX, ids=lambda c: c.id)
def test_org_b_learns_nothing_about_org_a_objects(world, case, actor):
    a, b = world["A"], world["B"]
    target = a.objects[case.kind]
    before = _snapshot(case.kind, target)
    client = _client(b, actor)

    foreign = _request(client, case, a.ident(case.kind))
    after = _snapshot(case.kind, target)
    missing = _request(client, case, MISSING[case.kind])

    assert after == before, f"B's {actor} changed A's {case.kind}"
    assert foreign.status_code == case.expect[actor], foreign.content[:500]
    assert foreign.status_code < 500
    assert _shape(foreign, a.ident(case.kind)) == _shape(missing, MISSING[case.kind])
    if case.kind == "org":  # a switch: B stays in its own organization
        assert session(b.owner).get("/api/organization").json()["slug"] == b.org.slug
        if actor != "key":
            assert client.get("/api/organization").json()["slug"] == b.org.slug
    if case.route == "v1-batches" and case.method == "post":
        assert not Batch.objects.filter(organization=b.org, input_file=target).exists()

    # The same request by A on its own object: the route is live and the id is the right one.
    own = case.own.get(actor)
    if own is None:
        return
    response = _request(_client(a, actor), case, a.ident(case.kind))
    if own == OK:
        assert _success(response), (response.status_code, response.content[:500])
        if case.route == "v1-file-content":
            assert _text(response).startswith('{"custom_id": "req-0"')
        if case.mutates:
            assert _snapshot(case.kind, target) != before, "A's own request should have changed the row"
        else:
            assert _snapshot(case.kind, target) == before
    else:
        assert response.status_code == own, response.content[:500]
        assert _snapshot(case.kind, target) == before


@pytest.mark.parametrize("case", [c for c in MATRIX if c.where == "path"], ids=lambda c: c.id)
def test_other_methods_on_a_foreign_id_answer_like_a_missing_one(world, case):
    """Methods a route does not accept (405 and friends) don't tell A's ids apart either."""
    a, b = world["A"], world["B"]
    target = a.objects[case.kind]
    before = _snapshot(case.kind, target)
    for actor in ("owner", "key"):
        client = _client(b, actor)
        for method in {"get", "post", "put", "patch", "delete"} - {case.method}:
            other = Case(case.route, method, case.kind, case.expect, case.own, body=case.body)
            foreign = _request(client, other, a.ident(case.kind))
            missing = _request(client, other, MISSING[case.kind])
            assert not _success(foreign) or foreign.status_code == 302, (method, actor, foreign.status_code)
            assert _shape(foreign, a.ident(case.kind)) == _shape(missing, MISSING[case.kind]), (method, actor)
            assert _snapshot(case.kind, target) == before, (method, actor)


# --- lists ---------------------------------------------------------------------------------------

# route → the credentials that may list it. Every list endpoint, list page and export that
# shows tenant objects; each must show its own organization's objects and never the other's.
LISTS = {
    "api-keys": ("owner", "key"),
    "api-members": ("owner",),
    "api-invitations": ("owner",),
    "api-ledger": ("owner",),
    "api-topups": ("owner",),
    "api-organizations": ("owner",),
    "api-balance": ("owner", "key"),
    "v1-files": ("key",),
    "v1-batches": ("key",),
    "keys": ("owner",),
    "organization": ("owner",),
    "usage": ("owner",),
    "usage-csv": ("owner",),
    "billing": ("owner",),
    "compare": ("owner",),
    "batches": ("owner",),
    "dashboard": ("owner",),
}
LIST_CASES = [(route, actor) for route, actors in LISTS.items() for actor in actors]


def _page_ids(body) -> set:
    return {row["id"] for row in body["results"]}


# JSON lists: what they show, as a set of ids (pages and the CSV are searched for markers).
SHOWN = {
    "api-keys": _page_ids,
    "api-members": _page_ids,
    "api-invitations": _page_ids,
    "api-ledger": _page_ids,
    "api-topups": _page_ids,
    "api-organizations": lambda body: {row["slug"] for row in body},
    "api-balance": lambda body: {body["balance_units"]},
    "v1-files": lambda body: {row["id"] for row in body["data"]},
    "v1-batches": lambda body: {row["id"] for row in body["data"]},
}


def _text(response) -> str:
    if not response.streaming:
        return response.content.decode()
    if not response.is_async:
        return b"".join(response.streaming_content).decode()

    async def drain() -> bytes:  # /v1/files/{id}/content streams from an async iterator (ASGI)
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(drain)().decode()


def _shown(route: str, response, markers: list) -> set:
    """Which of ``markers`` the list response shows."""
    if route in SHOWN:
        return SHOWN[route](response.json()) & set(markers)
    text = _text(response)
    return {m for m in markers if str(m) in text}


@pytest.mark.parametrize(("route", "actor"), LIST_CASES, ids=[f"{r}:{a}" for r, a in LIST_CASES])
def test_lists_show_only_their_own_organization(world, route, actor):
    for me, other in (("A", "B"), ("B", "A")):
        response = _client(world[me], actor).get(reverse(route))
        assert response.status_code == 200, (me, response.content[:300])
        mine, theirs = world[me].markers[route], world[other].markers[route]
        shown = _shown(route, response, [*mine, *theirs])
        assert shown & set(mine) == set(mine), f"{me} should see its own {route}: {mine}, shown {shown}"
        assert not shown & set(theirs), f"{me}'s {route} shows {other}'s {shown & set(theirs)}"


@pytest.mark.parametrize("route", ["usage", "usage-csv"])
def test_usage_filtered_by_a_foreign_key_is_empty(world, route):
    a, b = world["A"], world["B"]
    text = _text(session(b.owner).get(reverse(route), {"key": a.objects["key"].pk}))
    assert a.objects["usage"].request_id not in text
    assert b.objects["usage"].request_id not in text  # B's record is not A's key's either
    own = _text(session(a.owner).get(reverse(route), {"key": a.objects["key"].pk}))
    assert a.objects["usage"].request_id in own


# --- completeness ------------------------------------------------------------------------------

# Routes with a kwarg that are deliberately not in MATRIX:
EXCLUDED = {
    # Public: the invitation page is reached by its single-use secret token (not an id) by
    # someone who is not a member yet; tests/accounts/test_invitations.py covers it.
    "invitation-accept",
    # Public: allauth's e-mail confirmation and password-reset links, keyed by signed secrets.
    "account_confirm_email",
    "account_reset_password_from_key",
    # Public: the model catalogue (no tenant data); any model id, with or without a key.
    "v1-model-detail",
}
# Django's admin (/admin/…/<object_id>/…) is staff-only and spans every tenant by design.
EXCLUDED_NAMESPACES = {"admin"}


def _walk(patterns, namespace=None, kwargs=()):
    for p in patterns:
        names = (*kwargs, *p.pattern.regex.groupindex)
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, p.namespace or namespace, names)
        elif isinstance(p, URLPattern):
            yield p.name, namespace, names


@functools.cache
def _route_kwargs() -> dict[str, tuple]:
    return {name: kwargs for name, ns, kwargs in _walk(get_resolver().url_patterns) if ns is None}


def test_every_route_with_an_id_is_in_the_matrix_or_excluded():
    routes = list(_walk(get_resolver().url_patterns))
    with_ids = {name for name, ns, kwargs in routes if kwargs and ns not in EXCLUDED_NAMESPACES}
    assert all(name for name in with_ids), "a route with a kwarg has no name"
    covered = {c.route for c in MATRIX if c.where == "path"}
    missing = with_ids - covered - EXCLUDED
    assert not missing, f"routes taking an id with no isolation case (add them to MATRIX): {sorted(missing)}"
    # No stale entries: everything listed still exists, and exclusions are not also covered.
    names = {name for name, ns, _k in routes}
    assert {c.route for c in MATRIX} | set(LISTS) | EXCLUDED <= names
    assert not covered & EXCLUDED
    assert {name for name, ns, _k in routes if ns in EXCLUDED_NAMESPACES}, "the admin is mounted"


def test_every_method_a_path_route_accepts_is_in_the_matrix(world):
    """For each route in MATRIX, every method that A's own request does not get a 405 for is a case."""
    a = world["A"]
    for route in {c.route for c in MATRIX if c.where == "path"}:
        case = next(c for c in MATRIX if c.route == route)
        listed = {c.method for c in MATRIX if c.route == route and c.where == "path"}
        # The owner's session where sessions are accepted (a key would be refused before the
        # method is looked at on session-only routes), else the key.
        actor = "owner" if case.own["owner"] is not None else "key"
        client = _client(a, actor)
        for method in sorted({"get", "post", "put", "patch", "delete"} - listed):
            probe = Case(route, method, case.kind, case.expect, case.own, body=case.body)
            status = _request(client, probe, a.ident(case.kind)).status_code
            assert status == 405, f"{route} answers {method.upper()} with {status}: add it to MATRIX"


# --- roles: every (role, permission) through the real endpoints ---------------------------------

# The README's permission table, written out by hand. It must equal accounts.permissions;
# changing one without the other fails test_hand_table_equals_the_permission_module.
HAND_TABLE = {
    "org.view": {"owner", "admin", "member", "key"},
    "org.update": {"owner", "admin"},
    "balance.view": {"owner", "admin", "member", "key"},
    "usage.view": {"owner", "admin", "member", "key"},
    "keys.create": {"owner", "admin", "member"},
    "keys.manage_all": {"owner", "admin"},
    "billing.view": {"owner", "admin"},
    "billing.topup": {"owner", "admin"},
    "members.view": {"owner", "admin", "member"},
    "members.invite": {"owner", "admin"},
    "members.remove": {"owner", "admin"},
    "members.change_role": {"owner"},
}


def _module_table() -> dict[str, set[str]]:
    table = {p.value: {str(role) for role, perms in ROLE_PERMISSIONS.items() if p in perms} for p in Perm}
    for p in API_KEY_PERMISSIONS:
        table[p.value].add("key")
    return table


def test_hand_table_equals_the_permission_module():
    assert set(ROLE_PERMISSIONS) == {Role.OWNER, Role.ADMIN, Role.MEMBER}
    assert _module_table() == HAND_TABLE


def _fresh_member(t: Tenant, role: str = Role.MEMBER) -> Membership:
    from accounts.services import user_create

    n = Membership.objects.count()
    user = user_create(email=f"fresh-{n}-{t.tag.lower()}@iso.example.com", password="x-correct-horse")
    return Membership.objects.create(organization=t.org, user=user, role=role)


def _someone_elses_key(t: Tenant, actor: str) -> ApiKey:
    from accounts.services import api_key_create

    creator = t.admin if actor == "owner" else t.owner
    key, _secret = api_key_create(actor=creator, name="someone else's")
    return key


# perm → channel → attempt(tenant, actor, client) → (response, did_it_take_effect).
def _api_actions():
    def org_view(t, actor, c):
        r = c.get("/api/organization")
        return r, r.status_code == 200 and r.json()["slug"] == t.org.slug

    def org_update(t, actor, c):
        r = c.patch("/api/organization", {"name": f"Renamed by {actor}"}, format="json")
        return r, Organization.objects.get(pk=t.org.pk).name == f"Renamed by {actor}"

    def balance_view(t, actor, c):
        r = c.get("/api/balance")
        return r, r.status_code == 200 and r.json()["balance_units"] == t.objects["entry"].balance_after_units

    def keys_create(t, actor, c):
        r = c.post("/api/keys", {"name": f"new by {actor}"}, format="json")
        return r, ApiKey.objects.filter(organization=t.org, name=f"new by {actor}").exists()

    def keys_manage_all(t, actor, c):
        key = _someone_elses_key(t, actor)
        r = c.post(f"/api/keys/{key.pk}/revoke")
        return r, ApiKey.objects.get(pk=key.pk).revoked_at is not None

    def billing_view(t, actor, c):
        r = c.get("/api/ledger")
        return r, r.status_code == 200 and t.objects["entry"].pk in {e["id"] for e in r.json()["results"]}

    def billing_topup(t, actor, c):
        from billing.services import redemption_batch_create

        _batch, (code,) = redemption_batch_create(count=1, value_units=3 * USD)
        r = c.post("/api/redeem", {"code": code}, format="json")
        return r, LedgerEntry.objects.filter(account__organization=t.org, kind="redemption").exists()

    def members_view(t, actor, c):
        r = c.get("/api/members")
        return r, r.status_code == 200 and t.member.pk in {m["id"] for m in r.json()["results"]}

    def members_invite(t, actor, c):
        r = c.post("/api/invitations", {"email": f"new-{actor}@iso.example.com"}, format="json")
        return r, Invitation.objects.filter(organization=t.org, email=f"new-{actor}@iso.example.com").exists()

    def members_remove(t, actor, c):
        victim = _fresh_member(t)
        r = c.delete(f"/api/members/{victim.pk}")
        return r, not Membership.objects.filter(pk=victim.pk).exists()

    def members_change_role(t, actor, c):
        target = _fresh_member(t)
        r = c.patch(f"/api/members/{target.pk}", {"role": "admin"}, format="json")
        return r, Membership.objects.get(pk=target.pk).role == Role.ADMIN

    return {
        "org.view": org_view,
        "org.update": org_update,
        "balance.view": balance_view,
        "keys.create": keys_create,
        "keys.manage_all": keys_manage_all,
        "billing.view": billing_view,
        "billing.topup": billing_topup,
        "members.view": members_view,
        "members.invite": members_invite,
        "members.remove": members_remove,
        "members.change_role": members_change_role,
        # usage.view: no /api/ endpoint lists usage records (the dashboard does; see WEB_ACTIONS).
    }


def _web_actions():
    def org_view(t, actor, c):
        r = c.get(reverse("organization"))
        return r, r.status_code == 200 and t.org.name in r.content.decode()

    def org_update(t, actor, c):
        r = c.post(reverse("organization-rename"), {"name": f"Renamed on the web by {actor}"})
        return r, Organization.objects.get(pk=t.org.pk).name == f"Renamed on the web by {actor}"

    def usage_view(t, actor, c):
        r = c.get(reverse("usage"))
        return r, r.status_code == 200 and t.objects["usage"].request_id in r.content.decode()

    def keys_create(t, actor, c):
        c.post(reverse("keys"), {"name": f"web key by {actor}"})
        r = c.get(reverse("keys"))
        return r, ApiKey.objects.filter(organization=t.org, name=f"web key by {actor}").exists()

    def keys_manage_all(t, actor, c):
        key = _someone_elses_key(t, actor)
        r = c.post(reverse("key-revoke", args=[key.pk]))
        return r, ApiKey.objects.get(pk=key.pk).revoked_at is not None

    def billing_view(t, actor, c):
        r = c.get(reverse("billing"))
        return r, f"ledger-marker-{t.tag}" in r.content.decode()

    def billing_topup(t, actor, c):
        r = c.post(reverse("billing-threshold"), {"threshold_usd": "4.25"})
        from billing.models import BillingAccount

        units = BillingAccount.objects.get(organization=t.org).low_balance_threshold_units
        return r, units == 4_250_000_000

    def members_view(t, actor, c):
        r = c.get(reverse("organization"))
        return r, t.member.user.email in r.content.decode()

    def members_invite(t, actor, c):
        email = f"web-{actor}@iso.example.com"
        r = c.post(reverse("invitation-create"), {"email": email, "role": "member"})
        return r, Invitation.objects.filter(organization=t.org, email=email).exists()

    def members_remove(t, actor, c):
        victim = _fresh_member(t)
        r = c.post(reverse("member-remove", args=[victim.pk]))
        return r, not Membership.objects.filter(pk=victim.pk).exists()

    def members_change_role(t, actor, c):
        target = _fresh_member(t)
        r = c.post(reverse("member-role", args=[target.pk]), {"role": "admin"})
        return r, Membership.objects.get(pk=target.pk).role == Role.ADMIN

    return {
        "org.view": org_view,
        "org.update": org_update,
        "usage.view": usage_view,
        "keys.create": keys_create,
        "keys.manage_all": keys_manage_all,
        "billing.view": billing_view,
        "billing.topup": billing_topup,
        "members.view": members_view,
        "members.invite": members_invite,
        "members.remove": members_remove,
        "members.change_role": members_change_role,
        # balance.view: every dashboard page shows the balance to every role (no web refusal).
    }


API_ACTIONS, WEB_ACTIONS = _api_actions(), _web_actions()
ROLE_CASES = [
    (channel, perm, actor)
    for channel, actions in (("api", API_ACTIONS), ("web", WEB_ACTIONS))
    for perm in sorted(actions)
    for actor in ("owner", "admin", "member", *(("key",) if channel == "api" else ()))
]


def test_every_permission_has_an_action():
    assert set(API_ACTIONS) | set(WEB_ACTIONS) == {p.value for p in Perm}
    # The permissions without an action on one channel, and why (see the comments above).
    assert {p.value for p in Perm} - set(API_ACTIONS) == {"usage.view"}
    assert {p.value for p in Perm} - set(WEB_ACTIONS) == {"balance.view"}


@pytest.mark.parametrize(("channel", "perm", "actor"), ROLE_CASES, ids=["-".join(c) for c in ROLE_CASES])
def test_role_can_do_exactly_what_the_table_says(world, channel, perm, actor):
    t = world["A"]
    granted = API_KEY_PERMISSIONS if actor == "key" else ROLE_PERMISSIONS[actor]
    allowed = Perm(perm) in granted
    assert allowed == (actor in HAND_TABLE[perm]), "accounts.permissions and the hand table disagree"
    attempt = (API_ACTIONS if channel == "api" else WEB_ACTIONS)[perm]
    response, took_effect = attempt(t, actor, _client(t, actor))
    assert took_effect == allowed, (response.status_code, response.content[:300])
    if channel == "api":
        if allowed:
            assert 200 <= response.status_code < 300, response.content[:300]
        else:
            assert response.status_code == 403, response.content[:300]
            assert response.json()["error"]["code"] == "permission_denied"
    else:
        # Refused: a page answers 403, a form refused by the service redirects back with a
        # message, the billing page leaves the statement out (200). Nothing happened either
        # way (asserted above).
        assert response.status_code in ((200, 302) if allowed else (200, 302, 403)), response.status_code
