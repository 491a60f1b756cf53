"""Registry pages: public signed checkpoints and keys, and the console's *Verify registry*."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from openline.accounts.models import Role
from openline.accounts.permissions import ACTION, READ, role_required
from openline.consent import signing
from openline.consent.checkpoints import latest_checkpoint
from openline.consent.models import Checkpoint, VerificationRun
from openline.consent.runs import request_verification
from openline.core.params import BadParam, parse_id, parse_int

AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)
PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


# ----- public (no login): anyone may keep and check checkpoints -------------------------


def _public_json(data: dict, *, status: int = 200) -> JsonResponse:
    response = JsonResponse(data, status=status, json_dumps_params={"ensure_ascii": False})
    # Public, signed data: outside verifiers (a browser page included) may fetch it.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=5"
    return response


@require_safe
def checkpoint_latest(request: HttpRequest) -> JsonResponse:
    """Return the newest signed checkpoint (the registry head) as JSON with its JWS."""
    checkpoint = latest_checkpoint()
    if checkpoint is None:
        return _public_json({"detail": "Nothing has been sealed yet: no checkpoint."}, status=404)
    data = checkpoint.as_public_dict()
    data["jwks_url"] = request.build_absolute_uri(reverse("registry:jwks"))
    return _public_json(data)


@require_safe
def checkpoint_list(request: HttpRequest) -> JsonResponse:
    """List past checkpoints, newest first, ``limit`` at a time before batch ``before``."""
    try:
        before = parse_id(request.GET.get("before"), name="before")
        limit = parse_int(request.GET.get("limit"), name="limit", minimum=1, maximum=MAX_PAGE_SIZE)
    except BadParam as exc:
        return _public_json({"detail": str(exc)}, status=400)
    limit = limit or PAGE_SIZE
    queryset = Checkpoint.objects.order_by("-batch_number")
    if before is not None:
        queryset = queryset.filter(batch_number__lt=before)
    page = list(queryset[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    next_url = None
    if more:
        next_url = request.build_absolute_uri(
            f"{reverse('registry:checkpoints')}?before={page[-1].batch_number}&limit={limit}"
        )
    return _public_json({"checkpoints": [item.as_public_dict() for item in page], "next": next_url})


@require_safe
def jwks(request: HttpRequest) -> JsonResponse:
    """Publish the public keys (current and retired) that verify checkpoints and receipts."""
    return _public_json(signing.jwks())


# ----- console: Verify registry ------------------------------------------------------------


def _run_status(run: VerificationRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "finished": run.finished,
        "batches_checked": run.batches_checked,
        "records_checked": run.records_checked,
        "records_total": run.records_total,
        "problem_count": run.problem_count,
        "summary": run.summary,
    }


@role_required(*AUDIT_ROLES, methods=READ)
def verify_page(request: HttpRequest) -> HttpResponse:
    """Show recent verifications, the registry head, and a button to verify now."""
    runs = VerificationRun.objects.select_related("requested_by").order_by("-created_at", "-id")
    return render(
        request,
        "consent/registry_verify.html",
        {
            "runs": runs[:20],
            "checkpoint": latest_checkpoint(),
            "section": "registry",
        },
    )


@role_required(*AUDIT_ROLES, methods=ACTION)
def verify_start(request: HttpRequest) -> HttpResponse:
    """Queue a verification of the whole registry and show its progress."""
    run = request_verification(actor=request.user)
    return redirect("consent:registry_run", pk=run.pk)


@role_required(*AUDIT_ROLES, methods=READ)
def verify_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Show one verification: progress while it runs, then its result and problems."""
    run = get_object_or_404(VerificationRun, pk=pk)
    return render(
        request,
        "consent/registry_run.html",
        {"run": run, "status": _run_status(run), "section": "registry"},
    )


@role_required(*AUDIT_ROLES, methods=READ)
def verify_run_status(request: HttpRequest, pk: int) -> JsonResponse:
    """Return one verification's progress as JSON (the run page polls it)."""
    run = VerificationRun.objects.filter(pk=pk).first()
    if run is None:
        raise Http404("No such verification.")
    response = JsonResponse(_run_status(run))
    response["Cache-Control"] = "no-store"
    return response
