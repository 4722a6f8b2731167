"""Who may do what in an organization. The README's permission table is this module."""

from __future__ import annotations

from enum import StrEnum

from .models import Role


class Perm(StrEnum):
    ORG_VIEW = "org.view"
    ORG_UPDATE = "org.update"
    BALANCE_VIEW = "balance.view"
    USAGE_VIEW = "usage.view"
    KEYS_CREATE = "keys.create"
    KEYS_MANAGE_ALL = "keys.manage_all"  # update/revoke keys created by others
    BILLING_VIEW = "billing.view"  # ledger statement, top-up history
    BILLING_TOPUP = "billing.topup"  # top up and redeem codes
    MEMBERS_VIEW = "members.view"
    MEMBERS_INVITE = "members.invite"
    MEMBERS_REMOVE = "members.remove"
    MEMBERS_CHANGE_ROLE = "members.change_role"


_ALL = frozenset(Perm)
_ADMIN = _ALL - {Perm.MEMBERS_CHANGE_ROLE}
_MEMBER = frozenset({Perm.ORG_VIEW, Perm.BALANCE_VIEW, Perm.USAGE_VIEW, Perm.KEYS_CREATE, Perm.MEMBERS_VIEW})

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ADMIN,
    Role.MEMBER: _MEMBER,
}

# What a request authenticated with an API key (not a session) may do on /api/.
API_KEY_PERMISSIONS: frozenset[Perm] = frozenset({Perm.ORG_VIEW, Perm.BALANCE_VIEW, Perm.USAGE_VIEW})


def role_has(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())
