"""The Stripe webhook endpoint and the billing web page (session users)."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.current import current_membership
from accounts.permissions import Perm, role_has
from config.errors import ApplicationError

from . import payments, selectors, services
from .models import StripeEventStatus
from .money import format_usd

logger = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    """Verify over the raw body → store → process. 400 for anything not genuine and fresh
    (nothing is written); 200 once processed, ignored or already seen; 500 when
    processing failed (recorded on the stored event; Stripe delivers it again)."""
    try:
        event, result = payments.stripe_webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature", "")
        )
    except payments.WebhookRejected as exc:
        logger.warning("stripe webhook rejected: %s", exc)
        return JsonResponse({"error": {"message": "invalid webhook", "code": "invalid_webhook"}}, status=400)
    status = 500 if result == StripeEventStatus.FAILED else 200
    return JsonResponse({"id": event.event_id, "status": result}, status=status)


def _membership_or_none(request):
    membership = current_membership(request)
    if membership is None:
        messages.error(request, _("You are not a member of any organization."))
    return membership


@login_required
def billing_overview(request):
    membership = _membership_or_none(request)
    if membership is None:
        return redirect("dashboard")
    org_id = membership.organization_id
    can_view = role_has(membership.role, Perm.BILLING_VIEW)
    balance = selectors.balance_for_org(org_id=org_id)
    context = {
        "membership": membership,
        "balance": format_usd(balance.balance_units),
        "held": format_usd(balance.held_units),
        "available": format_usd(balance.available_units),
        "can_topup": role_has(membership.role, Perm.BILLING_TOPUP),
        "options": payments.topup_options(),
        "entries": list(selectors.ledger_for_org(org_id=org_id)[:25]) if can_view else [],
        "topups": list(selectors.topups_for_org(org_id=org_id)[:10]) if can_view else [],
        "checkout": request.GET.get("checkout"),
    }
    return render(request, "billing/overview.html", context)


@login_required
@require_POST
def billing_topup(request):
    membership = _membership_or_none(request)
    if membership is None or not role_has(membership.role, Perm.BILLING_TOPUP):
        return HttpResponse(status=403)
    try:
        topup = payments.topup_checkout_create(
            org_id=membership.organization_id,
            amount_usd=request.POST.get("amount_usd", ""),
            acting_user=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("billing")
    return redirect(topup.checkout_url)


@login_required
@require_POST
def billing_redeem(request):
    membership = _membership_or_none(request)
    if membership is None or not role_has(membership.role, Perm.BILLING_TOPUP):
        return HttpResponse(status=403)
    try:
        entry = services.redemption_redeem(
            org_id=membership.organization_id, code=request.POST.get("code", ""), acting_user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("%(usd)s USD credited.") % {"usd": format_usd(entry.amount_units)})
    return redirect("billing")
