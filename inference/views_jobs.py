"""Web pages for jobs (session users, the current organization): compare side by side, batch progress."""

from __future__ import annotations

import base64

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_safe

from config.errors import ApplicationError
from models_catalog.constants import Modality, ModelStatus
from models_catalog.selectors import catalogue_snapshot

from .jobs import batches as batch_services
from .jobs import compare

MAX_IMAGE_UPLOAD = 10 * 1024 * 1024


def _chat_models() -> list:
    return [
        m
        for m in catalogue_snapshot().models.values()
        if m.status == ModelStatus.ACTIVE and Modality.TEXT in m.output_modalities
    ]


def _image_data_url(upload) -> str:
    if upload is None:
        return ""
    if upload.size > MAX_IMAGE_UPLOAD:
        raise ApplicationError(f"The image is larger than {MAX_IMAGE_UPLOAD // (1024 * 1024)} MB.")
    content_type = upload.content_type or "image/png"
    if not content_type.startswith("image/"):
        raise ApplicationError("The file is not an image.")
    return f"data:{content_type};base64," + base64.b64encode(upload.read()).decode()


@login_required
def compare_page(request):
    from accounts.current import current_membership

    membership = current_membership(request)
    if membership is None:
        return redirect("dashboard")
    form = {"prompt": "", "models": []}
    if request.method == "POST":
        form = {"prompt": request.POST.get("prompt", ""), "models": request.POST.getlist("models")}
        try:
            max_tokens = int(request.POST.get("max_tokens") or 0) or None
            job = compare.compare_create(
                org=membership.organization,
                models=form["models"],
                prompt=form["prompt"],
                image=_image_data_url(request.FILES.get("image")),
                max_tokens=max_tokens,
                user=request.user,
            )
        except (ApplicationError, ValueError) as exc:
            messages.error(request, getattr(exc, "message", str(exc)))
        else:
            return redirect("compare-detail", compare_id=job.public_id)
    recent = compare.compares_for_org(org_id=membership.organization_id)[:10]
    return render(
        request,
        "inference/compare.html",
        {"models": _chat_models(), "form": form, "recent": recent, "job": None},
    )


@login_required
@require_safe
def compare_detail_page(request, compare_id: str):
    from accounts.current import current_membership

    membership = current_membership(request)
    if membership is None:
        return redirect("dashboard")
    try:
        job = compare.compare_get(org_id=membership.organization_id, public_id=compare_id)
    except ApplicationError:
        return render(request, "inference/compare.html", {"job": None, "missing": True}, status=404)
    results = list(job.results.all())
    return render(
        request,
        "inference/compare.html",
        {"job": job, "results": results, "running": compare.compare_status(job) != "completed"},
    )


@login_required
def batches_page(request):
    from accounts.current import current_membership

    membership = current_membership(request)
    if membership is None:
        return redirect("dashboard")
    rows = list(batch_services.batches_for_org(org_id=membership.organization_id)[:50])
    counts = batch_services.batch_counts(batch_ids=[b.pk for b in rows])
    for b in rows:
        c = counts.get(b.pk, {"completed": 0, "failed": 0})
        b.done = c["completed"] + c["failed"]
        b.completed_count, b.failed_count = c["completed"], c["failed"]
    return render(request, "inference/batches.html", {"batches": rows})
