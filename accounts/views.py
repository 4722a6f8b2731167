"""Web pages for organizations and invitations (session users)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from config.errors import ApplicationError

from . import selectors, services
from .current import current_membership, current_membership_set


def landing(request):
    if request.user.is_authenticated:
        return redirect("dashboard")
    return render(request, "landing.html")


@login_required
def dashboard(request):
    membership = current_membership(request)
    return render(request, "dashboard/overview.html", {"membership": membership})


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
