"""Every write to users, organizations, memberships, invitations and keys."""

from __future__ import annotations

import datetime as dt
import secrets
import time

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from config.cachesafe import cache_add
from config.errors import ApplicationError, Conflict, NotFound, PermissionDenied, ValidationFailed
from config.localcache import io_point

from .keys import key_display_prefix, key_generate, key_hash
from .models import ApiKey, Invitation, Membership, Organization, OrganizationAuditLog, Role, User
from .permissions import Perm, role_has

LAST_USED_RESOLUTION = dt.timedelta(seconds=60)
KEY_CACHE_TTL = 300

# Per-process copies on the relay's hot path (``api_key_lookup``, ``api_key_touch``): the key by
# hash for API_KEY_LOCAL_CACHE_SECONDS, and when this process last recorded a key's use. An
# update or revocation evicts this process's copy at once (on commit) and the shared cache
# entry; other processes drop theirs within API_KEY_LOCAL_CACHE_SECONDS.
LOCAL_KEYS: dict[str, tuple[float, ApiKey]] = {}
LOCAL_KEYS_MAX = 10_000
_touched: dict[int, float] = {}


def _audit(*, org: Organization, acting_user: User | None, event: str, **detail) -> None:
    OrganizationAuditLog.objects.create(organization=org, acting_user=acting_user, event=event, detail=detail)


def _require(membership: Membership, perm: Perm) -> None:
    if not role_has(membership.role, perm):
        raise PermissionDenied(
            _("Your role (%(role)s) may not do this.") % {"role": membership.role},
            extra={"permission": str(perm)},
        )


# --- users and organizations -------------------------------------------------------


def user_create(*, email: str, password: str | None = None, name: str = "") -> User:
    return User.objects.create_user(email=email, password=password, name=name)


def _unique_slug(name: str) -> str:
    base = (slugify(name) or "org")[:40].strip("-") or "org"
    for _attempt in range(20):
        slug = f"{base}-{secrets.token_hex(3)}"
        if not Organization.objects.filter(slug=slug).exists():
            return slug
    raise Conflict("Could not allocate an organization slug.")  # pragma: no cover


@transaction.atomic
def organization_create(*, owner: User, name: str) -> Organization:
    """Create an organization with ``owner`` as its first owner."""
    name = name.strip() or _("%(email)s's organization") % {"email": owner.email}
    for _attempt in range(3):
        try:
            with transaction.atomic():
                org = Organization.objects.create(name=name[:120], slug=_unique_slug(name), created_by=owner)
            break
        except IntegrityError:  # a concurrent create took the slug
            continue
    else:  # pragma: no cover
        raise Conflict("Could not allocate an organization slug.")
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    _audit(org=org, acting_user=owner, event="organization.created", name=org.name)
    return org


@transaction.atomic
def organization_update(*, membership: Membership, name: str) -> Organization:
    _require(membership, Perm.ORG_UPDATE)
    org = membership.organization
    org.name = name.strip()[:120] or org.name
    org.save(update_fields=["name"])
    _audit(org=org, acting_user=membership.user, event="organization.updated", name=org.name)
    return org


# --- memberships -----------------------------------------------------------------


def _owner_count(org: Organization) -> int:
    return Membership.objects.filter(organization=org, role=Role.OWNER).count()


def _lock_memberships(org: Organization) -> None:
    """Serialize role changes in one organization (pk order, as every lock here)."""
    list(Membership.objects.filter(organization=org).order_by("pk").select_for_update().values_list("pk"))


@transaction.atomic
def membership_role_change(*, actor: Membership, target: Membership, role: str) -> Membership:
    _require(actor, Perm.MEMBERS_CHANGE_ROLE)
    if role not in Role.values:
        raise ValidationFailed(_("Unknown role."), extra={"role": role})
    if target.organization_id != actor.organization_id:
        raise NotFound(_("No such member."))
    _lock_memberships(actor.organization)
    target.refresh_from_db()
    if target.role == Role.OWNER and role != Role.OWNER and _owner_count(actor.organization) <= 1:
        raise Conflict(_("An organization needs at least one owner."), code="last_owner")
    old = target.role
    target.role = role
    target.save(update_fields=["role"])
    _audit(
        org=actor.organization,
        acting_user=actor.user,
        event="member.role_changed",
        user=target.user.email,
        old=old,
        new=role,
    )
    return target


@transaction.atomic
def membership_remove(*, actor: Membership, target: Membership) -> None:
    if target.organization_id != actor.organization_id:
        raise NotFound(_("No such member."))
    if target.pk != actor.pk:  # leaving an organization needs no permission
        _require(actor, Perm.MEMBERS_REMOVE)
        if actor.role != Role.OWNER and target.role in (Role.OWNER, Role.ADMIN):
            raise PermissionDenied(_("Only an owner may remove an owner or an admin."))
    _lock_memberships(actor.organization)
    target.refresh_from_db()
    if target.role == Role.OWNER and _owner_count(actor.organization) <= 1:
        raise Conflict(_("An organization needs at least one owner."), code="last_owner")
    _audit(org=actor.organization, acting_user=actor.user, event="member.removed", user=target.user.email)
    target.delete()


# --- invitations -----------------------------------------------------------------


@transaction.atomic
def invitation_create(*, actor: Membership, email: str, role: str = Role.MEMBER) -> tuple[Invitation, str]:
    """Invite ``email``; returns the invitation and its single-use token (sent by e-mail)."""
    _require(actor, Perm.MEMBERS_INVITE)
    email = email.strip().lower()
    if role not in (Role.ADMIN, Role.MEMBER):
        raise ValidationFailed(_("Invitations are for the admin or member role."), extra={"role": role})
    if role == Role.ADMIN and actor.role != Role.OWNER:
        raise PermissionDenied(_("Only an owner may invite an admin."))
    org = actor.organization
    if Membership.objects.filter(organization=org, user__email__iexact=email).exists():
        raise Conflict(_("%(email)s is already a member.") % {"email": email}, code="already_member")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=org,
        email=email,
        role=role,
        token_hash=key_hash(token),
        invited_by=actor.user,
        expires_at=timezone.now() + dt.timedelta(hours=settings.INVITATION_TTL_HOURS),
    )
    _audit(org=org, acting_user=actor.user, event="invitation.created", email=email, role=role)
    url = f"{settings.MODELGATE_PUBLIC_URL.rstrip('/')}/invitations/{token}/"
    subject = _("You are invited to %(org)s on Modelgate") % {"org": org.name}
    body = _(
        "%(inviter)s invited you to join %(org)s as %(role)s.\n\nAccept: %(url)s\n\n"
        "The link works once and expires in %(hours)s hours."
    ) % {
        "inviter": actor.user.email,
        "org": org.name,
        "role": role,
        "url": url,
        "hours": settings.INVITATION_TTL_HOURS,
    }
    transaction.on_commit(lambda: send_mail(subject, body, None, [email]))
    return invitation, token


def invitation_get_by_token(*, token: str) -> Invitation:
    try:
        return Invitation.objects.select_related("organization").get(token_hash=key_hash(token))
    except Invitation.DoesNotExist:
        raise NotFound(_("This invitation does not exist.")) from None


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Accept an invitation: single use, not expired, and only by the invited address."""
    invitation = invitation_get_by_token(token=token)
    if invitation.email.lower() != user.email.lower():
        raise PermissionDenied(
            _("This invitation was sent to another e-mail address."), code="invitation_wrong_user"
        )
    now = timezone.now()
    claimed = Invitation.objects.filter(
        pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).update(accepted_at=now, accepted_by=user)
    if not claimed:
        invitation.refresh_from_db()
        raise ApplicationError(
            _("This invitation is %(status)s.") % {"status": invitation.status},
            code=f"invitation_{invitation.status}",
            status=410,
        )
    membership, created = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    _audit(
        org=invitation.organization,
        acting_user=user,
        event="invitation.accepted",
        email=user.email,
        role=membership.role,
        joined=created,
    )
    return membership


@transaction.atomic
def invitation_revoke(*, actor: Membership, invitation: Invitation) -> Invitation:
    _require(actor, Perm.MEMBERS_INVITE)
    if invitation.organization_id != actor.organization_id:
        raise NotFound(_("No such invitation."))
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    invitation.refresh_from_db()
    _audit(org=actor.organization, acting_user=actor.user, event="invitation.revoked", email=invitation.email)
    return invitation


# --- API keys ----------------------------------------------------------------------


def _key_cache_key(secret_hash: str) -> str:
    return f"apikey:{secret_hash}"


def _key_cache_forget(key: ApiKey) -> None:
    def forget() -> None:
        LOCAL_KEYS.pop(key.secret_hash, None)
        cache.delete(_key_cache_key(key.secret_hash))

    transaction.on_commit(forget)


def _validate_limits(
    *, spend_cap_units: int | None, allowed_models: list[str] | None, rpm_limit, tpm_limit
) -> None:
    if spend_cap_units is not None and spend_cap_units < 0:
        raise ValidationFailed(_("The spend cap cannot be negative."), extra={"field": "spend_cap_units"})
    if allowed_models is not None and (
        not isinstance(allowed_models, list) or not all(isinstance(m, str) and m for m in allowed_models)
    ):
        raise ValidationFailed(_("allowed_models must be a list of model ids."))
    for field, value in (("rpm_limit", rpm_limit), ("tpm_limit", tpm_limit)):
        if value is not None and value <= 0:
            raise ValidationFailed(_("Limits must be positive."), extra={"field": field})


@transaction.atomic
def api_key_create(
    *,
    actor: Membership,
    name: str,
    expires_at: dt.datetime | None = None,
    spend_cap_units: int | None = None,
    allowed_models: list[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key. Returns the key and its secret, which is never stored or shown again."""
    _require(actor, Perm.KEYS_CREATE)
    _validate_limits(
        spend_cap_units=spend_cap_units,
        allowed_models=allowed_models,
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(_("The expiry must be in the future."), extra={"field": "expires_at"})
    secret = key_generate()
    key = ApiKey.objects.create(
        organization=actor.organization,
        name=name.strip()[:100] or _("Unnamed key"),
        prefix=key_display_prefix(secret),
        secret_hash=key_hash(secret),
        created_by=actor.user,
        expires_at=expires_at,
        spend_cap_units=spend_cap_units,
        allowed_models=allowed_models or [],
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
    )
    _audit(org=actor.organization, acting_user=actor.user, event="key.created", key=key.prefix, name=key.name)
    return key, secret


def _require_key_control(actor: Membership, key: ApiKey) -> None:
    if key.organization_id != actor.organization_id:
        raise NotFound(_("No such API key."))
    if key.created_by_id != actor.user_id:
        _require(actor, Perm.KEYS_MANAGE_ALL)


_UNSET = object()


@transaction.atomic
def api_key_update(
    *,
    actor: Membership,
    key: ApiKey,
    name=_UNSET,
    expires_at=_UNSET,
    spend_cap_units=_UNSET,
    allowed_models=_UNSET,
    rpm_limit=_UNSET,
    tpm_limit=_UNSET,
) -> ApiKey:
    _require_key_control(actor, key)
    changes = {
        field: value
        for field, value in {
            "name": name,
            "expires_at": expires_at,
            "spend_cap_units": spend_cap_units,
            "allowed_models": allowed_models,
            "rpm_limit": rpm_limit,
            "tpm_limit": tpm_limit,
        }.items()
        if value is not _UNSET
    }
    _validate_limits(
        spend_cap_units=changes.get("spend_cap_units"),
        allowed_models=changes.get("allowed_models"),
        rpm_limit=changes.get("rpm_limit"),
        tpm_limit=changes.get("tpm_limit"),
    )
    if "allowed_models" in changes and changes["allowed_models"] is None:
        changes["allowed_models"] = []
    for field, value in changes.items():
        setattr(key, field, value)
    key.save(update_fields=list(changes))
    _audit(
        org=actor.organization,
        acting_user=actor.user,
        event="key.updated",
        key=key.prefix,
        fields=sorted(changes),
    )
    _key_cache_forget(key)
    return key


@transaction.atomic
def api_key_revoke(*, actor: Membership | None, key: ApiKey, acting_user: User | None = None) -> ApiKey:
    """Revoke a key (idempotent). ``actor`` is None for operators acting from the admin."""
    if actor is not None:
        _require_key_control(actor, key)
        acting_user = actor.user
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db()
    _audit(org=key.organization, acting_user=acting_user, event="key.revoked", key=key.prefix)
    _key_cache_forget(key)
    return key


def api_key_touch(*, key: ApiKey) -> None:
    """Record use, at most once a minute per key: a cache ``add`` gates one cheap UPDATE, and
    this process asks the cache at most once a minute per key."""
    resolution = LAST_USED_RESOLUTION.total_seconds()
    mono = time.monotonic()
    if mono - _touched.get(key.pk, -resolution) < resolution:
        return
    io_point()
    _touched[key.pk] = mono
    if not cache_add(f"apikey-touched:{key.pk}", 1, int(resolution)):
        return  # touched recently by another process (or the cache is down: skip, it's a hint)
    now = timezone.now()
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now


def api_key_touch_forget() -> None:
    _touched.clear()


def api_key_add_spend(*, key_id: int, amount_units: int) -> None:
    ApiKey.objects.filter(pk=key_id).update(spent_units=F("spent_units") + amount_units)


def api_key_spend_reserve(*, key_id: int, amount_units: int) -> bool:
    """Count ``amount_units`` against a capped key's spend, only if it stays within the cap.

    One conditional UPDATE (no check-then-act): concurrent requests on one key can never
    reserve past its cap. Keys without a cap always succeed.
    """
    updated = (
        ApiKey.objects.filter(pk=key_id)
        .filter(Q(spend_cap_units__isnull=True) | Q(spend_cap_units__gte=F("spent_units") + amount_units))
        .update(spent_units=F("spent_units") + amount_units)
    )
    return bool(updated)
