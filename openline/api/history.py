"""Consent history: who changed the consent workflow, when, from what to what.

The list the console's *Consent history* shows (``AuditEvent``): channel consent settings and
consent changes, newest first, for administrators and auditors. The history is append-only;
the API only reads it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError

from openline.accounts.models import Role
from openline.accounts.permissions import has_role
from openline.consent.models import AuditAction, AuditEvent
from openline.core.api_errors import errors
from openline.core.params import MAX_ID, AsciiDigits, QueryId

router = Router(tags=["consent history"])


class EventOut(Schema):
    id: int
    created_at: dt.datetime
    action: str = Field(description="What changed, e.g. `agreement_version`")
    action_label: str
    actor_id: int | None
    actor: str = Field(description="Who changed it, as recorded at the time")
    channel_id: int | None
    agreement_id: int | None = Field(description="The consent concerned")
    subject: str = Field(description="The consent or channel, as named at the time")
    before: Any = Field(description="The values before the change (null when created)")
    after: Any = Field(description="The values after the change")


def _out(event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "created_at": event.created_at,
        "action": event.action,
        "action_label": event.get_action_display(),
        "actor_id": event.actor_id,
        "actor": event.actor_label,
        "channel_id": event.channel_id,
        "agreement_id": event.agreement_id,
        "subject": event.subject_label,
        "before": event.before,
        "after": event.after,
    }


class EventPage(Schema):
    items: list[EventOut]
    next_cursor: int | None = Field(None, description="Pass as `cursor` for the next (older) page.")


class EventFilters(Schema):
    agreement: QueryId | None = Field(None, description="Only this consent's events")
    channel: QueryId | None = Field(None, description="Only this Open Channel's events")
    action: AuditAction | None = None
    since: dt.date | None = Field(None, description="On or after this day, YYYY-MM-DD")
    until: dt.date | None = Field(None, description="On or before this day, YYYY-MM-DD")
    cursor: Annotated[int, AsciiDigits] | None = Field(None, ge=0, le=MAX_ID)
    limit: Annotated[int, AsciiDigits] = Field(50, ge=1, le=200)


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


@router.get(
    "",
    response={200: EventPage, **errors(401, 403, 422)},
    summary="List the consent history, newest first",
)
def list_history(request: HttpRequest, filters: Query[EventFilters]):
    if not has_role(request.user, Role.ADMINISTRATOR, Role.AUDITOR):
        raise HttpError(403, "Your role does not give access to the consent history.")
    if filters.since and filters.until and filters.until < filters.since:
        raise HttpError(422, "until: must not be before since.")
    events = AuditEvent.objects.all()
    if filters.agreement is not None:
        events = events.filter(agreement_id=filters.agreement)
    if filters.channel is not None:
        events = events.filter(channel_id=filters.channel)
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.since:
        events = events.filter(created_at__gte=_day_start(filters.since))
    if filters.until and filters.until < dt.date.max:
        events = events.filter(created_at__lt=_day_start(filters.until + dt.timedelta(days=1)))
    if filters.cursor is not None:
        events = events.filter(pk__lt=filters.cursor)
    page = list(events.order_by("-pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {"items": [_out(e) for e in page], "next_cursor": page[-1].pk if more else None}
