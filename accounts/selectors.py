"""Reads. Everything tenant-owned is looked up through the organization it belongs to."""

from __future__ import annotations

import time

from django.conf import settings
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from config.cachesafe import cache_get, cache_set
from config.errors import NotFound
from config.localcache import io_point

from .keys import key_hash, looks_like_key
from .models import ApiKey, Invitation, Membership, Organization, User
from .services import KEY_CACHE_TTL, LOCAL_KEYS, LOCAL_KEYS_MAX, _key_cache_key


def organizations_for_user(*, user: User) -> QuerySet[Organization]:
    return Organization.objects.filter(memberships__user=user).order_by("name", "pk")


def membership_for(*, user: User, org_id: int | None = None, slug: str | None = None) -> Membership:
    """The user's membership in one organization (404 when they have none)."""
    qs = Membership.objects.select_related("organization", "user").filter(user=user)
    qs = qs.filter(organization_id=org_id) if org_id is not None else qs.filter(organization__slug=slug)
    membership = qs.first()
    if membership is None:
        raise NotFound(_("No such organization."))
    return membership


def membership_default(*, user: User) -> Membership | None:
    return Membership.objects.select_related("organization", "user").filter(user=user).order_by("pk").first()


def members_for_org(*, org: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=org).select_related("user").order_by("pk")


def member_get(*, org: Organization, membership_id: int) -> Membership:
    try:
        return members_for_org(org=org).get(pk=membership_id)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise NotFound(_("No such member.")) from None


def invitations_for_org(*, org: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=org).select_related("invited_by").order_by("-pk")


def invitation_get(*, org: Organization, invitation_id: int) -> Invitation:
    try:
        return invitations_for_org(org=org).get(pk=invitation_id)
    except (Invitation.DoesNotExist, ValueError, TypeError):
        raise NotFound(_("No such invitation.")) from None


def api_keys_for_org(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=org).select_related("created_by").order_by("-pk")


def api_key_get(*, org: Organization, key_id: int) -> ApiKey:
    try:
        return api_keys_for_org(org=org).get(pk=key_id)
    except (ApiKey.DoesNotExist, ValueError, TypeError):
        raise NotFound(_("No such API key.")) from None


def api_key_lookup(*, secret: str) -> ApiKey | None:
    """The key (with its organization) for a presented secret, or None.

    Cached by hash for KEY_CACHE_TTL in the shared cache, and for
    API_KEY_LOCAL_CACHE_SECONDS in this process; update and revoke evict both. Validity
    (revoked, expired) is checked by the caller on every request.
    """
    if not looks_like_key(secret):
        return None
    digest = key_hash(secret)
    local_ttl = settings.API_KEY_LOCAL_CACHE_SECONDS
    now = time.monotonic()
    if local_ttl > 0:
        hit = LOCAL_KEYS.get(digest)
        if hit is not None and now - hit[0] < local_ttl:
            return hit[1]
    io_point()
    cache_key = _key_cache_key(digest)
    key = cache_get(cache_key)  # a cache that is down reads as a miss: the database answers
    if key is None:
        key = ApiKey.objects.select_related("organization").filter(secret_hash=digest).first()
        if key is None:
            return None
        cache_set(cache_key, key, KEY_CACHE_TTL)
    if local_ttl > 0:
        if len(LOCAL_KEYS) >= LOCAL_KEYS_MAX:
            LOCAL_KEYS.clear()
        LOCAL_KEYS[digest] = (now, key)
    return key
