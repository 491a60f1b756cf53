"""Read side of the registry: the Obtained consents filter, keyset pages and counts.

The exports are in ``export.py``. The registry knows no Open Channels: the pages above it
hand the filter the channels to choose from (``channels=``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from openline.consent.models import (
    Agreement,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
)
from openline.core.params import day_after, is_int

PAGE_SIZE = 50
# What a row of the Obtained consents table shows; evidence and user agents stay unread.
LIST_COLUMNS = (
    "uuid",
    "created_at",
    "language",
    "state",
    "method",
    "origin",
    "source_type",
    "source_id",
    "source_label",
    "address",
    "ip",
    "ip_missing_reason",
    "conversation_id",
    "agreement__name",
    "version__number",
    "visitor__public_id",
    "visitor__name",
    "visitor__erased_at",
)
COUNT_CAP = 1000

PERIODS = [
    ("", "Any time"),
    ("today", "Today"),
    ("yesterday", "Yesterday"),
    ("last7", "Last 7 days"),
    ("last30", "Last 30 days"),
    ("this_month", "This month"),
    ("last_month", "Last month"),
    ("custom", "Custom range"),
]


class RecordFilterForm(forms.Form):
    """The Obtained consents filter; it lives in the URL so a view can be shared."""

    # Plain choice fields built from one small query each: ModelChoiceField would walk a
    # server-side cursor per render, which costs more than the whole page of records.
    consent = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label="Consent",
        error_messages={"invalid_choice": "Unknown consent: choose one from the list."},
    )
    channel = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label="Open Channel",
        error_messages={"invalid_choice": "Unknown Open Channel: choose one from the list."},
    )
    period = forms.ChoiceField(choices=PERIODS, required=False, label="Date")
    date_from = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a valid date (YYYY-MM-DD)."},
    )
    date_to = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": "Enter a valid date (YYYY-MM-DD)."},
    )
    origin = forms.ChoiceField(
        choices=[("", "Any origin"), *ConsentOrigin.choices], required=False, label="Origin"
    )
    state = forms.ChoiceField(
        choices=[("", "Any state"), *ConsentState.choices], required=False, label="State"
    )
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Client or IP",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, e-mail, phone, visitor id or IP"}
        ),
    )

    def __init__(self, *args, channels: Mapping[int, Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreements = {a.pk: a for a in Agreement.objects.order_by("name", "id")}
        # Open Channels by id, in display order (objects with a ``name``), from the caller.
        self.channels = dict(channels or {})
        consent_field = cast(forms.ChoiceField, self.fields["consent"])
        channel_field = cast(forms.ChoiceField, self.fields["channel"])
        consent_field.choices = [("", "All consents")] + [
            (pk, a.name if a.is_active else f"{a.name} (deactivated)")
            for pk, a in self.agreements.items()
        ]
        channel_field.choices = [("", "All Open Channels")] + [
            (pk, c.name) for pk, c in self.channels.items()
        ]

    def clean_consent(self):
        value = self.cleaned_data.get("consent")
        return self.agreements.get(value) if value is not None else None

    def clean_channel(self):
        value = self.cleaned_data.get("channel")
        return self.channels.get(value) if value is not None else None

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return data


@dataclass
class RecordFilter:
    """Valid filter values; fields the visitor got wrong are left out (and reported)."""

    consent: Agreement | None = None
    channel: Any = None  # one of the Open Channels the form was given
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    origin: str = ""
    state: str = ""
    q: str = ""
    # Visitors that the pages above the registry found for ``q`` (the CRM's names, e-mails
    # and phones, via ``conversations.naming``): matched as well as the registry's own. Any
    # iterable of visitor ids; pass a lazy QuerySet of ids so that it becomes a subquery
    # (a search that finds everybody must not become one SQL parameter per visitor).
    q_visitor_ids: Iterable[int] = frozenset()


_FIRST_DAY = dt.date(1, 1, 3)
_LAST_DAY = dt.date(9999, 12, 30)


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def period_bounds(
    period: str, *, today: dt.date | None = None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Turn a date preset into [since, until) in the server's time zone."""
    today = today or timezone.localdate()
    tomorrow = today + dt.timedelta(days=1)
    if period == "today":
        return _day_start(today), _day_start(tomorrow)
    if period == "yesterday":
        return _day_start(today - dt.timedelta(days=1)), _day_start(today)
    if period == "last7":
        return _day_start(today - dt.timedelta(days=6)), _day_start(tomorrow)
    if period == "last30":
        return _day_start(today - dt.timedelta(days=29)), _day_start(tomorrow)
    if period == "this_month":
        return _day_start(today.replace(day=1)), _day_start(tomorrow)
    if period == "last_month":
        first = today.replace(day=1)
        return _day_start((first - dt.timedelta(days=1)).replace(day=1)), _day_start(first)
    return None, None


def parse_filter(
    params, *, channels: Mapping[int, Any] | None = None
) -> tuple[RecordFilterForm, RecordFilter]:
    """Bind the filter form to query parameters; keep every valid field, report the rest.

    ``channels`` maps the Open Channels one may filter by from id to channel.
    """
    form = RecordFilterForm(params or None, channels=channels)
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    result = RecordFilter(
        consent=data.get("consent"),
        channel=data.get("channel"),
        origin=data.get("origin") or "",
        state=data.get("state") or "",
        q=(data.get("q") or "").strip(),
    )
    period = data.get("period") or ""
    if period and period != "custom":
        result.since, result.until = period_bounds(period)
    elif "date_from" not in form.errors and "date_to" not in form.errors:
        if data.get("date_from"):
            # The first day or two of year 1 cannot be shifted to UTC; nothing is older anyway.
            result.since = _day_start(max(data["date_from"], _FIRST_DAY))
        if data.get("date_to"):
            # "To 9999-12-31" has no next day: it means no upper bound.
            end = day_after(data["date_to"])
            result.until = _day_start(end) if end is not None and end < _LAST_DAY else None
    return form, result


def _visitors() -> QuerySet:
    # Through the record's foreign key: the registry names the visitor model, never imports it.
    return ConsentRecord._meta.get_field("visitor").related_model._default_manager.all()


def _visitor_ids_matching(text: str):
    try:
        public_id = uuid.UUID(text)
    except ValueError:
        public_id = None
    if public_id is not None:
        return _visitors().filter(public_id=public_id).values("id")
    condition = Q(name__icontains=text) | Q(email__icontains=text) | Q(phone__icontains=text)
    hexish = text.lower().removeprefix("visitor ").strip()
    if 4 <= len(hexish) <= 36 and all(c in "0123456789abcdef-" for c in hexish):
        # Visitor ids are shown shortened ("Visitor 1a2b3c4d"): match their beginning.
        condition |= Q(public_id__startswith=hexish)
    return _visitors().filter(condition).values("id")


def filtered_records(flt: RecordFilter) -> QuerySet[ConsentRecord]:
    """Return records matching the filter, newest first."""
    qs = ConsentRecord.objects.all()
    if flt.consent is not None:
        qs = qs.filter(agreement=flt.consent)
    if flt.channel is not None:
        qs = qs.filter(channel=flt.channel)
    if flt.since is not None:
        qs = qs.filter(created_at__gte=flt.since)
    if flt.until is not None:
        qs = qs.filter(created_at__lt=flt.until)
    if flt.origin:
        qs = qs.filter(origin=flt.origin)
    if flt.state:
        qs = qs.filter(state=flt.state)
    if flt.q:
        try:
            address = ipaddress.ip_address(flt.q)
        except ValueError:
            address = None
        if address is not None:
            qs = qs.filter(
                ip=str(address.ipv4_mapped or address)
                if isinstance(address, ipaddress.IPv6Address)
                else str(address)
            )
        else:
            try:
                record_uuid = uuid.UUID(flt.q)
            except ValueError:
                record_uuid = None
            condition = Q(visitor_id__in=_visitor_ids_matching(flt.q))
            found = flt.q_visitor_ids
            if isinstance(found, QuerySet):
                # A subquery: never evaluated here, never tested for truth (that would run it).
                condition |= Q(visitor_id__in=found)
            elif found:
                condition |= Q(visitor_id__in=sorted(found))
            if record_uuid is not None:
                condition |= Q(uuid=record_uuid)
            qs = qs.filter(condition)
    return qs.order_by("-created_at", "-id")


# ----- keyset pagination ------------------------------------------------------------------


class BadCursor(ValueError):
    pass


def encode_cursor(created_at: dt.datetime, pk: int) -> str:
    """Encode the position after a record as an opaque URL-safe token."""
    raw = f"{created_at.astimezone(dt.UTC).isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[dt.datetime, int]:
    """Decode a token from ``encode_cursor``; raise BadCursor when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, pk = raw.split("|")
        created_at = dt.datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive")
        # Only ids a bigint can hold, and instants that exist in UTC (year 1..9999).
        if not is_int(pk):
            raise ValueError("id")
        return created_at.astimezone(dt.UTC), int(pk)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("This page link is not valid; showing the newest records.") from exc


def after_cursor(
    qs: QuerySet[ConsentRecord], cursor: tuple[dt.datetime, int] | None
) -> QuerySet[ConsentRecord]:
    """Keep only records after ``cursor`` in newest-first order, as one index range."""
    if cursor is None:
        return qs
    created_at, pk = cursor
    # A row-value comparison lets both databases walk the (created_at, id) index directly;
    # the timestamp goes through the backend's adapter so SQLite compares like with like.
    table = ConsentRecord._meta.db_table
    stamp = connection.ops.adapt_datetimefield_value(created_at)
    return qs.filter(created_at__lte=created_at).extra(  # noqa: S610 - fixed SQL, values as parameters
        where=[f'("{table}"."created_at", "{table}"."id") < (%s, %s)'],
        params=[stamp, pk],
    )


@dataclass
class Page:
    records: list[ConsentRecord]
    next_cursor: str | None


def page_of(
    qs: QuerySet[ConsentRecord], cursor: tuple[dt.datetime, int] | None, size: int = PAGE_SIZE
) -> Page:
    """Return one newest-first page after ``cursor`` and the cursor of the next page."""
    rows = list(after_cursor(qs, cursor)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, encode_cursor(rows[-1].created_at, rows[-1].pk) if more and rows else None)


def _planner_estimate(qs: QuerySet[ConsentRecord]) -> int:
    sql, params = qs.order_by().values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def count_estimate(qs: QuerySet[ConsentRecord]) -> tuple[int, bool]:
    """Count up to COUNT_CAP rows exactly; beyond that, ask PostgreSQL's planner for an estimate.

    Returns (count, exact).
    """
    if connection.vendor == "postgresql":
        estimate = _planner_estimate(qs)
        if estimate > 10 * COUNT_CAP:
            # Clearly big: the planner's estimate is all the page needs.
            return estimate, False
    bounded = qs.order_by().values("id")[: COUNT_CAP + 1].count()
    if bounded <= COUNT_CAP:
        return bounded, True
    if connection.vendor == "postgresql":
        return max(_planner_estimate(qs), COUNT_CAP + 1), False
    return COUNT_CAP + 1, False
