from allauth.account.adapter import DefaultAccountAdapter
from django.db import transaction

from .current import current_membership_set
from .models import Membership
from .services import organization_create


class AccountAdapter(DefaultAccountAdapter):
    """Signup creates the user's first organization, with the user as its owner."""

    @transaction.atomic
    def save_user(self, request, user, form, commit=True):
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            org = organization_create(owner=user, name=form.cleaned_data.get("organization") or "")
            membership = Membership.objects.select_related("organization", "user").get(
                organization=org, user=user
            )
            current_membership_set(request, membership)
        return user
