"""Registry integrity over the API: *Verify registry* runs and the signed checkpoints.

The operations belong to the consents router (``/api/v1/consents/...``); ``add_operations``
attaches them so that module stays small. Administrators and auditors only, as in the console.
The public ``/registry/checkpoint`` pages keep serving anyone; these add the console's rules,
token access and cursor pages.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from openline.accounts.models import Role
from openline.accounts.permissions import has_role
from openline.consent.models import Checkpoint, VerificationRun
from openline.consent.runs import request_verification
from openline.core.api_errors import errors
from openline.core.params import AsciiDigits

AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)
MAX_ID = 2**63 - 1


def _require(request: HttpRequest) -> None:
    if not has_role(request.user, *AUDIT_ROLES):
        raise HttpError(403, "Only administrators and auditors verify the consent registry.")


class ProblemOut(Schema):
    kind: str
    record_id: int | str | None = None
    message: str


class RunOut(Schema):
    id: int
    status: str = Field(description="`queued`, `running`, `passed`, `failed` or `error`.")
    status_label: str
    finished: bool
    source: str
    requested_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    batches_checked: int
    records_checked: int
    records_total: int
    unsealed: int
    problem_count: int
    problems: list[ProblemOut] = Field(description="The first problems found (at most 100).")
    summary: str


def _run_out(run: VerificationRun) -> dict:
    return {
        "id": run.pk,
        "status": run.status,
        "status_label": run.get_status_display(),
        "finished": run.finished,
        "source": run.source,
        "requested_by": run.requested_by_label,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "batches_checked": run.batches_checked,
        "records_checked": run.records_checked,
        "records_total": run.records_total,
        "unsealed": run.unsealed,
        "problem_count": run.problem_count,
        "problems": run.problems or [],
        "summary": run.summary,
    }


class CheckpointOut(Schema):
    batch_number: int
    batch_hash: str = Field(description="SHA-256 (hex) heading the chain after this batch.")
    merkle_root: str = Field(description="Merkle root (hex) of the batch's records.")
    record_count: int = Field(description="Records sealed in batches 1 to this one.")
    last_record_id: int
    issued_at: str = Field(description="UTC, ISO 8601 with microseconds, as signed.")
    kid: str = Field(description="Key id; the key is published at `/registry/jwks.json`.")
    jws: str = Field(description="Compact JWS (EdDSA) over the other fields.")


class CheckpointPage(Schema):
    items: list[CheckpointOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next (older) page.")


class CheckpointFilters(Schema):
    cursor: Annotated[int, AsciiDigits] | None = Field(
        None, ge=0, le=MAX_ID, description="Checkpoints with a smaller batch number."
    )
    limit: Annotated[int, AsciiDigits] = Field(100, ge=1, le=1000)


def add_operations(router: Router) -> None:
    """Attach the registry operations to the consents router."""

    @router.post(
        "/verify",
        # Named like the rest of the consents API (published operation ids never change).
        operation_id="openline_consent_api_start_verification",
        response={202: RunOut, **errors(401, 403)},
        summary="Verify the whole registry in the background (administrators, auditors)",
    )
    def start_verification(request: HttpRequest):
        """Queue a verification like the console's *Verify registry*; poll the run for its result."""
        _require(request)
        run = request_verification(actor=request.user)
        return Status(202, _run_out(run))

    @router.get(
        "/verify/{run_id}",
        operation_id="openline_consent_api_get_verification",
        response={200: RunOut, **errors(401, 403, 404, 422)},
        summary="One verification: progress while it runs, then its result and problems",
    )
    def get_verification(request: HttpRequest, run_id: int):
        _require(request)
        run = VerificationRun.objects.filter(pk=run_id).first() if 0 < run_id <= MAX_ID else None
        if run is None:
            raise HttpError(404, "No such verification.")
        return _run_out(run)

    @router.get(
        "/checkpoints",
        operation_id="openline_consent_api_list_checkpoints",
        response={200: CheckpointPage, **errors(401, 403, 422)},
        summary="Signed registry checkpoints, newest first (cursor pages)",
    )
    def list_checkpoints(request: HttpRequest, filters: Query[CheckpointFilters]):
        _require(request)
        checkpoints = Checkpoint.objects.order_by("-batch_number")
        if filters.cursor is not None:
            checkpoints = checkpoints.filter(batch_number__lt=filters.cursor)
        page = list(checkpoints[: filters.limit + 1])
        more = len(page) > filters.limit
        page = page[: filters.limit]
        return {
            "items": [c.as_public_dict() for c in page],
            "next_cursor": page[-1].batch_number if more and page else None,
        }

    @router.get(
        "/checkpoints/{batch}",
        operation_id="openline_consent_api_get_checkpoint",
        response={200: CheckpointOut, **errors(401, 403, 404, 422)},
        summary="The signed checkpoint issued after one seal batch",
    )
    def get_checkpoint(request: HttpRequest, batch: int):
        _require(request)
        checkpoint = (
            Checkpoint.objects.filter(batch_number=batch).first() if 0 < batch <= MAX_ID else None
        )
        if checkpoint is None:
            raise HttpError(404, "No checkpoint with this batch number.")
        return checkpoint.as_public_dict()
