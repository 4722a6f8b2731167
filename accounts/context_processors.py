from .current import current_membership
from .selectors import organizations_for_user


def organization(request):
    membership = current_membership(request)
    if membership is None:
        return {"current_membership": None, "user_organizations": []}
    return {
        "current_membership": membership,
        "user_organizations": organizations_for_user(user=membership.user),
    }
