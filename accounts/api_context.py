"""Who is calling ``/api/`` and for which organization.

A session acts for its current organization with its membership's role; an API key
acts for its own organization with the narrow ``API_KEY_PERMISSIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from rest_framework import permissions

from config.errors import NotFound, PermissionDenied

from .authentication import ApiKeyUser
from .current import current_membership
from .models import ApiKey, Membership, Organization
from .permissions import API_KEY_PERMISSIONS, ROLE_PERMISSIONS, Perm


@dataclass(frozen=True)
class ApiContext:
    org: Organization
    membership: Membership | None
    api_key: ApiKey | None

    @property
    def perms(self) -> frozenset[Perm]:
        if self.membership is not None:
            return ROLE_PERMISSIONS[self.membership.role]
        return API_KEY_PERMISSIONS

    def require(self, perm: Perm) -> None:
        if perm not in self.perms:
            who = self.membership.role if self.membership else "API key"
            raise PermissionDenied(
                _("Not allowed for %(who)s.") % {"who": who}, extra={"permission": str(perm)}
            )

    def require_membership(self) -> Membership:
        if self.membership is None:
            raise PermissionDenied(_("This endpoint needs a signed-in user, not an API key."))
        return self.membership


def api_context(request) -> ApiContext:
    user = request.user
    if isinstance(user, ApiKeyUser):
        return ApiContext(org=user.api_key.organization, membership=None, api_key=user.api_key)
    membership = current_membership(request)
    if membership is None:
        raise NotFound(_("You are not a member of any organization."))
    return ApiContext(org=membership.organization, membership=membership, api_key=None)


class HasOrgPermission(permissions.BasePermission):
    """``permission_classes = [HasOrgPermission.of(Perm.X)]`` on an API view."""

    perm: Perm | None = None

    @classmethod
    def of(cls, perm: Perm) -> type[HasOrgPermission]:
        return type(f"Has_{perm.name}", (cls,), {"perm": perm})

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        api_context(request).require(self.perm)
        return True
