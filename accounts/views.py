"""Web pages for organizations, members, invitations, API keys and the quickstart (session users).

Thin: parse the form, call one service or selector, render. Another organization's object is
a 404 (selectors look everything up through the current organization).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from config.errors import ApplicationError, NotFound

from . import selectors, services
from .current import current_membership, current_membership_set
from .models import Role
from .permissions import Perm, role_has

NEW_KEY_SESSION = "dashboard_new_key"  # the secret of a key just created: shown once, then popped


def membership_required(perm: Perm | None = None):
    """Login required; the current membership is set on ``request.membership``. Without an
    organization the user is sent to create one; without ``perm`` the page answers 403."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            membership = current_membership(request)
            if membership is None:
                messages.info(request, _("Create an organization to get started."))
                return redirect("organization")
            if perm is not None and not role_has(membership.role, perm):
                return render(request, "403.html", {"membership": membership}, status=403)
            request.membership = membership
            try:
                return view(request, *args, **kwargs)
            except NotFound as exc:
                raise Http404(exc.message) from None

        return wrapped

    return decorator


def landing(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "landing.html")


@login_required
@require_POST
def organization_switch(request):
    try:
        membership = selectors.membership_for(user=request.user, slug=request.POST.get("slug", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        current_membership_set(request, membership)
        messages.success(request, _("Switched to %(org)s.") % {"org": membership.organization.name})
    return redirect(request.POST.get("next") or "dashboard")


def invitation_accept(request, token: str):
    try:
        invitation = services.invitation_get_by_token(token=token)
    except ApplicationError:
        return render(request, "accounts/invitation.html", {"invitation": None}, status=404)
    if request.method == "POST" and request.user.is_authenticated:
        try:
            membership = services.invitation_accept(token=token, user=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            current_membership_set(request, membership)
            messages.success(request, _("Welcome to %(org)s.") % {"org": membership.organization.name})
            return redirect("dashboard")
    return render(request, "accounts/invitation.html", {"invitation": invitation})


# --- organization ------------------------------------------------------------------------


@login_required
def organization_page(request):
    membership = current_membership(request)
    context = {"membership": membership, "roles": Role.choices}
    if membership is not None:
        org = membership.organization
        role = membership.role
        context.update(
            members=list(selectors.members_for_org(org=org)),
            invitations=(
                [i for i in selectors.invitations_for_org(org=org)[:50] if i.status == "pending"]
                if role_has(role, Perm.MEMBERS_INVITE)
                else []
            ),
            can_invite=role_has(role, Perm.MEMBERS_INVITE),
            can_change_role=role_has(role, Perm.MEMBERS_CHANGE_ROLE),
            can_remove=role_has(role, Perm.MEMBERS_REMOVE),
            can_rename=role_has(role, Perm.ORG_UPDATE),
            invite_roles=[(Role.MEMBER, Role.MEMBER.label), (Role.ADMIN, Role.ADMIN.label)],
        )
    return render(request, "accounts/organization.html", context)


@login_required
@require_POST
def organization_create(request):
    org = services.organization_create(owner=request.user, name=request.POST.get("name", ""))
    current_membership_set(request, selectors.membership_for(user=request.user, org_id=org.pk))
    messages.success(request, _("Organization %(org)s created.") % {"org": org.name})
    return redirect("dashboard")


def _act(request, action, success: str, target: str = "organization"):
    try:
        action()
    except NotFound as exc:
        raise Http404(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect(target)


@membership_required(Perm.ORG_UPDATE)
@require_POST
def organization_rename(request):
    name = request.POST.get("name", "")
    return _act(
        request,
        lambda: services.organization_update(membership=request.membership, name=name),
        _("Organization renamed."),
    )


@membership_required(Perm.MEMBERS_INVITE)
@require_POST
def invitation_create(request):
    email, role = request.POST.get("email", ""), request.POST.get("role", Role.MEMBER)

    def invite():
        if "@" not in email:
            raise ApplicationError(_("Enter an e-mail address."))
        services.invitation_create(actor=request.membership, email=email, role=role)

    return _act(request, invite, _("Invitation sent to %(email)s.") % {"email": email.strip()})


@membership_required(Perm.MEMBERS_INVITE)
@require_POST
def invitation_revoke(request, invitation_id: int):
    invitation = selectors.invitation_get(org=request.membership.organization, invitation_id=invitation_id)
    return _act(
        request,
        lambda: services.invitation_revoke(actor=request.membership, invitation=invitation),
        _("Invitation revoked."),
    )


@membership_required(Perm.MEMBERS_VIEW)
@require_POST
def member_role_change(request, membership_id: int):
    target = selectors.member_get(org=request.membership.organization, membership_id=membership_id)
    role = request.POST.get("role", "")
    return _act(
        request,
        lambda: services.membership_role_change(actor=request.membership, target=target, role=role),
        _("Role changed."),
    )


@membership_required(Perm.MEMBERS_VIEW)
@require_POST
def member_remove(request, membership_id: int):
    target = selectors.member_get(org=request.membership.organization, membership_id=membership_id)
    leaving = target.pk == request.membership.pk
    response = _act(
        request,
        lambda: services.membership_remove(actor=request.membership, target=target),
        _("You left the organization.") if leaving else _("Member removed."),
    )
    if (
        leaving
        and not selectors.members_for_org(org=request.membership.organization).filter(pk=target.pk).exists()
    ):
        request.session.pop("organization_id", None)
        return redirect("organization")
    return response


# --- API keys ----------------------------------------------------------------------------


def _parse_limits(post) -> dict:
    """Form fields → service keyword arguments. Blank = no limit."""

    def integer(name):
        value = (post.get(name) or "").strip()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise ApplicationError(_("%(field)s must be a whole number.") % {"field": name}) from None

    cap = (post.get("spend_cap_usd") or "").strip()
    try:
        cap_units = None if not cap else int(Decimal(cap) * 1_000_000_000)
    except (InvalidOperation, ValueError):
        raise ApplicationError(_("Enter the spend cap in US dollars, e.g. 5 or 2.50.")) from None
    models = [
        m.strip() for m in (post.get("allowed_models") or "").replace("\n", ",").split(",") if m.strip()
    ]
    expires = (post.get("expires_in_days") or "").strip()
    try:
        expires_at = timezone.now() + dt.timedelta(days=int(expires)) if expires else None
    except (ValueError, OverflowError):
        raise ApplicationError(_("Expiry is a number of days.")) from None
    return {
        "spend_cap_units": cap_units,
        "allowed_models": models,
        "rpm_limit": integer("rpm_limit"),
        "tpm_limit": integer("tpm_limit"),
        "expires_at": expires_at,
    }


def quickstart_context(secret: str | None) -> dict:
    base = settings.MODELGATE_PUBLIC_URL.rstrip("/") + "/v1"
    return {"base_url": base, "api_key": secret or "YOUR_MODELGATE_API_KEY", "key_filled": bool(secret)}


@membership_required(Perm.KEYS_CREATE)
def keys_page(request):
    membership = request.membership
    if request.method == "POST":
        try:
            limits = _parse_limits(request.POST)
            key, secret = services.api_key_create(
                actor=membership, name=request.POST.get("name", ""), **limits
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            # Kept in the session for exactly one page view, then popped; never stored elsewhere.
            request.session[NEW_KEY_SESSION] = {"id": key.pk, "secret": secret}
            return redirect("keys")
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    can_manage_all = role_has(membership.role, Perm.KEYS_MANAGE_ALL)
    keys = list(selectors.api_keys_for_org(org=membership.organization))
    for key in keys:
        key.can_control = can_manage_all or key.created_by_id == membership.user_id
    context = {
        "membership": membership,
        "keys": keys,
        "new_key": new_key,
        "new_key_obj": next((k for k in keys if new_key and k.pk == new_key["id"]), None),
        **quickstart_context(new_key["secret"] if new_key else None),
    }
    return render(request, "accounts/keys.html", context)


@membership_required(Perm.KEYS_CREATE)
@require_POST
def key_update(request, key_id: int):
    key = selectors.api_key_get(org=request.membership.organization, key_id=key_id)

    def update():
        limits = _parse_limits(request.POST)
        limits.pop("expires_at")
        services.api_key_update(
            actor=request.membership, key=key, name=request.POST.get("name", key.name), **limits
        )

    return _act(request, update, _("Key %(name)s updated.") % {"name": key.name}, target="keys")


@membership_required(Perm.KEYS_CREATE)
@require_POST
def key_revoke(request, key_id: int):
    key = selectors.api_key_get(org=request.membership.organization, key_id=key_id)
    return _act(
        request,
        lambda: services.api_key_revoke(actor=request.membership, key=key),
        _("Key %(name)s revoked. Requests with it are refused from now on.") % {"name": key.name},
        target="keys",
    )


@membership_required()
def quickstart(request):
    new_key = request.session.pop(NEW_KEY_SESSION, None)
    context = {
        "membership": request.membership,
        "has_keys": selectors.api_keys_for_org(org=request.membership.organization).exists(),
        **quickstart_context(new_key["secret"] if new_key else None),
    }
    return render(request, "accounts/quickstart.html", context)
