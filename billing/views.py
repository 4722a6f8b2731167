"""The Stripe webhook endpoint and the billing web page (session users)."""

from __future__ import annotations

import logging

from django.conf import settings
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
from .models import BillingAccount, EntryKind, StripeEventStatus
from .money import format_usd, usd_to_units

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
        return redirect("organization")
    org_id = membership.organization_id
    can_view = role_has(membership.role, Perm.BILLING_VIEW)
    balance = selectors.balance_for_org(org_id=org_id)
    threshold = (
        BillingAccount.objects.filter(organization_id=org_id)
        .values_list("low_balance_threshold_units", flat=True)
        .first()
    )
    kind = request.GET.get("kind", "")
    kinds = [kind] if kind in EntryKind.values else None
    size = settings.DASHBOARD_PAGE_SIZE
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    entries = (
        list(selectors.ledger_for_org(org_id=org_id, kinds=kinds)[(page - 1) * size : page * size + 1])
        if can_view
        else []
    )
    context = {
        "membership": membership,
        "balance_units": balance.balance_units,
        "held_units": balance.held_units,
        "available_units": balance.available_units,
        "threshold": None if threshold is None else format_usd(threshold),
        "below_threshold": threshold is not None and balance.available_units < threshold,
        "can_view": can_view,
        "can_topup": role_has(membership.role, Perm.BILLING_TOPUP),
        "options": payments.topup_options(),
        "entries": entries[:size],
        "has_next": len(entries) > size,
        "page": page,
        "kind": kind if kinds else "",
        "kinds": EntryKind.choices,
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


@login_required
@require_POST
def billing_threshold(request):
    """Set or clear (blank) the low-balance alert threshold, in USD."""
    membership = _membership_or_none(request)
    if membership is None or not role_has(membership.role, Perm.BILLING_TOPUP):
        return HttpResponse(status=403)
    raw = request.POST.get("threshold_usd", "").strip()
    try:
        units = None if not raw else usd_to_units(raw)
        services.billing_settings_update(org_id=membership.organization_id, low_balance_threshold_units=units)
    except ValueError:
        messages.error(request, _("Enter the threshold in US dollars, e.g. 5 or 2.50."))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Low-balance alert cleared.")
            if units is None
            else _("We will e-mail owners and admins when the available balance falls below %(usd)s USD.")
            % {"usd": format_usd(units)},
        )
    return redirect("billing")
