"""The session user's current organization (no middleware: resolved lazily, once per request).

The current organization is kept in the session (``organization_id``) and always
re-checked against the user's memberships, so a stale or forged value falls back
to the user's first organization.
"""

from __future__ import annotations

from config.errors import NotFound

from .models import Membership
from .selectors import membership_default, membership_for

SESSION_KEY = "organization_id"
_UNSET = object()


def current_membership(request) -> Membership | None:
    cached = getattr(request, "_current_membership", _UNSET)
    if cached is not _UNSET:
        return cached
    membership = None
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and isinstance(user.pk, int):
        org_id = request.session.get(SESSION_KEY)
        if org_id is not None:
            try:
                membership = membership_for(user=user, org_id=org_id)
            except NotFound:
                request.session.pop(SESSION_KEY, None)
        if membership is None:
            membership = membership_default(user=user)
    request._current_membership = membership
    return membership


def current_membership_set(request, membership: Membership) -> None:
    request.session[SESSION_KEY] = membership.organization_id
    if getattr(request, "user", None) == membership.user:
        request._current_membership = membership
    else:  # e.g. at signup, before the new user is logged in
        request.__dict__.pop("_current_membership", None)
