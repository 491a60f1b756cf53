"""Read side of the registry: the Obtained consents filter, keyset pages and exports."""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import io
import ipaddress
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from openline.consent.models import (
    Agreement,
    AgreementVersion,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
)
from openline.conversations.models import Visitor
from openline.core.params import day_after, is_int
from openline.openchannels.models import OpenChannel

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
EXPORT_CHUNK = 5000

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
        label="User or IP",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, e-mail, visitor id or IP"}
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.agreements = {a.pk: a for a in Agreement.objects.order_by("name", "id")}
        self.channels = {c.pk: c for c in OpenChannel.objects.order_by("name", "id")}
        self.fields["consent"].choices = [("", "All consents")] + [
            (pk, a.name if a.is_active else f"{a.name} (deactivated)")
            for pk, a in self.agreements.items()
        ]
        self.fields["channel"].choices = [("", "All Open Channels")] + [
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
    channel: OpenChannel | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    origin: str = ""
    state: str = ""
    q: str = ""


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


def parse_filter(params) -> tuple[RecordFilterForm, RecordFilter]:
    """Bind the filter form to query parameters; keep every valid field, report the rest."""
    form = RecordFilterForm(params or None)
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


def _visitor_ids_matching(text: str):
    try:
        public_id = uuid.UUID(text)
    except ValueError:
        public_id = None
    if public_id is not None:
        return Visitor.objects.filter(public_id=public_id).values("id")
    condition = Q(name__icontains=text) | Q(email__icontains=text) | Q(phone__icontains=text)
    hexish = text.lower().removeprefix("visitor ").strip()
    if 4 <= len(hexish) <= 36 and all(c in "0123456789abcdef-" for c in hexish):
        # Visitor ids are shown shortened ("Visitor 1a2b3c4d"): match their beginning.
        condition |= Q(public_id__startswith=hexish)
    return Visitor.objects.filter(condition).values("id")


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
            visitors = _visitor_ids_matching(flt.q)
            if record_uuid is not None:
                qs = qs.filter(Q(uuid=record_uuid) | Q(visitor_id__in=visitors))
            else:
                qs = qs.filter(visitor_id__in=visitors)
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


# ----- export -----------------------------------------------------------------------------

EXPORT_FIELDS = [
    "date",
    "record_id",
    "user",
    "visitor_id",
    "source_type",
    "source_id",
    "source",
    "address",
    "ip",
    "ip_missing_reason",
    "consent",
    "consent_id",
    "version",
    "language",
    "state",
    "method",
    "origin",
    "channel_id",
    "conversation_id",
    "text_sha256",
    "user_agent",
]
_VALUES = (
    "id",
    "created_at",
    "uuid",
    "visitor__name",
    "visitor__erased_at",
    "visitor__public_id",
    "source_type",
    "source_id",
    "source_label",
    "address",
    "ip",
    "ip_missing_reason",
    "agreement_id",
    "version_id",
    "language",
    "state",
    "method",
    "origin",
    "channel_id",
    "conversation_id",
    "text_sha256",
    "user_agent",
)


def _user_label(name: str, erased_at, public_id) -> str:
    short = str(public_id)[:8]
    if erased_at:
        return f"Deleted client {short}"
    return name or f"Visitor {short}"


def _defused(column: str) -> str:
    # Spreadsheets run cells that start like a formula; a leading quote keeps them text.
    return f"CASE WHEN {column} ~ '^[-=+@\\t\\r]' THEN chr(39) || {column} ELSE {column} END"


def _as_is(column: str) -> str:
    return column


def _pg_export_sql(text: Callable[[str], str]) -> str:
    """Build the export query; ``text`` wraps each free-text column (neutralise or keep)."""
    return (
        "SELECT r.id, r.created_at::text, r.uuid::text, "
        + text(
            "CASE WHEN v.erased_at IS NOT NULL THEN 'Deleted client ' || left(v.public_id::text, 8) "
            "ELSE coalesce(nullif(v.name, ''), 'Visitor ' || left(v.public_id::text, 8)) END"
        )
        + ", v.public_id::text, r.source_type, "
        + ", ".join(text(c) for c in ("r.source_id", "r.source_label", "r.address"))
        + ", coalesce(host(r.ip), ''), r.ip_missing_reason, "
        + text("a.name")
        + ", r.agreement_id, ver.number, "
        "r.language, r.state, r.method, r.origin, r.channel_id, r.conversation_id, r.text_sha256, "
        + text("r.user_agent")
        + " FROM ({inner}) AS page "
        "JOIN consent_consentrecord r ON r.id = page.id "
        "JOIN conversations_visitor v ON v.id = r.visitor_id "
        "JOIN consent_agreement a ON a.id = r.agreement_id "
        "JOIN consent_agreementversion ver ON ver.id = r.version_id "
        "ORDER BY r.created_at DESC, r.id DESC"
    )


# Values as stored for JSON Lines (and any other data consumer); neutralising formulas is a
# spreadsheet concern, so only the CSV query (COPY) does it.
_PG_EXPORT_SQL = _pg_export_sql(_as_is)
_PG_CSV_SQL = _pg_export_sql(_defused)


def _export_rows_postgresql(flt: RecordFilter) -> Iterator[list[list]]:
    # The same keyset chunks, with PostgreSQL formatting the values as text: the Python
    # loop then only assembles rows, which keeps the export well above 50,000 rows/s.
    base = filtered_records(flt)
    cursor: tuple[dt.datetime, int] | None = None
    while True:
        inner_sql, params = (
            after_cursor(base, cursor).values("id")[:EXPORT_CHUNK].query.sql_with_params()
        )
        with connection.cursor() as db:
            db.execute(_PG_EXPORT_SQL.format(inner=inner_sql), params)
            chunk = db.fetchall()
        if not chunk:
            return
        yield [list(row[1:]) for row in chunk]
        last = chunk[-1]
        cursor = (dt.datetime.fromisoformat(last[1]), last[0])
        if len(chunk) < EXPORT_CHUNK:
            return


def _csv_chunks_postgresql(flt: RecordFilter) -> Iterator[bytes]:
    # PostgreSQL writes the CSV itself (COPY ... TO STDOUT), one keyset chunk per COPY, so the
    # server only forwards bytes: constant memory, and far faster than formatting in Python.
    import psycopg

    base = filtered_records(flt)
    cursor: tuple[dt.datetime, int] | None = None
    raw = connection.connection
    while True:
        ids = after_cursor(base, cursor).values("id")[:EXPORT_CHUNK]
        inner_sql, params = ids.query.sql_with_params()
        sql = _PG_CSV_SQL.replace("SELECT r.id, ", "SELECT ", 1).format(inner=inner_sql)
        query = psycopg.ClientCursor(raw).mogrify(sql, params)
        # One yield per chunk: under ASGI every yield is a hop between threads.
        buffer = bytearray()
        with raw.cursor() as db, db.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
            for data in copy:
                buffer += data
        yield bytes(buffer)
        # The next chunk starts after the oldest row of this one.
        last = after_cursor(base, cursor).values_list("created_at", "id")[
            EXPORT_CHUNK - 1 : EXPORT_CHUNK
        ]
        boundary = list(last)
        if not boundary:
            return
        cursor = (boundary[0][0], boundary[0][1])


def export_rows(flt: RecordFilter) -> Iterator[list[list]]:
    """Yield the filtered records as rows in EXPORT_FIELDS order, a keyset chunk at a time.

    Memory stays constant: each chunk is one index range query of EXPORT_CHUNK rows.
    """
    if connection.vendor == "postgresql":
        yield from _export_rows_postgresql(flt)
        return
    names = dict(Agreement.objects.values_list("id", "name"))
    numbers = dict(AgreementVersion.objects.values_list("id", "number"))
    base = filtered_records(flt)
    cursor: tuple[dt.datetime, int] | None = None
    utc = dt.UTC
    while True:
        chunk = list(after_cursor(base, cursor).values_list(*_VALUES)[:EXPORT_CHUNK])
        if not chunk:
            return
        missing = {row[13] for row in chunk if row[13] not in numbers}
        if missing:
            numbers.update(
                AgreementVersion.objects.filter(pk__in=missing).values_list("id", "number")
            )
            names.update(Agreement.objects.values_list("id", "name"))
        out: list[list] = []
        append = out.append
        for (
            _pk,
            created_at,
            rec_uuid,
            v_name,
            v_erased,
            v_public,
            source_type,
            source_id,
            source_label,
            address,
            ip,
            ip_reason,
            agreement_id,
            version_id,
            language,
            state,
            method,
            origin,
            channel_id,
            conversation_id,
            text_sha256,
            user_agent,
        ) in chunk:
            public = str(v_public)
            user = (
                f"Deleted client {public[:8]}" if v_erased else (v_name or f"Visitor {public[:8]}")
            )
            append(
                [
                    created_at.astimezone(utc).isoformat(),
                    str(rec_uuid),
                    user,
                    public,
                    source_type,
                    source_id,
                    source_label,
                    address,
                    ip or "",
                    ip_reason,
                    names.get(agreement_id, ""),
                    agreement_id,
                    numbers.get(version_id),
                    language,
                    state,
                    method,
                    origin,
                    channel_id,
                    conversation_id,
                    text_sha256,
                    user_agent,
                ]
            )
        yield out
        last = chunk[-1]
        cursor = (last[1], last[0])
        if len(chunk) < EXPORT_CHUNK:
            return


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Columns a client or an integration can write: a spreadsheet would run a formula there.
_FREE_TEXT = [
    EXPORT_FIELDS.index(name)
    for name in ("user", "source_id", "source", "address", "consent", "user_agent")
]


def _cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    # Spreadsheets run cells that start like a formula; a quote keeps them text.
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(flt: RecordFilter) -> Iterator[bytes]:
    """Yield the CSV export as encoded chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    yield buffer.getvalue().encode()
    if connection.vendor == "postgresql":
        yield from _csv_chunks_postgresql(flt)
        return
    defuse_here = connection.vendor != "postgresql"  # PostgreSQL defuses formulas in the query
    for rows in export_rows(flt):
        buffer.seek(0)
        buffer.truncate()
        for row in rows if defuse_here else ():
            for index in _FREE_TEXT:
                value = row[index]
                if value and value.startswith(_FORMULA_START):
                    row[index] = "'" + value
        writer.writerows(rows)
        yield buffer.getvalue().encode()


def jsonl_chunks(flt: RecordFilter) -> Iterator[bytes]:
    """Yield the JSON Lines export as encoded chunks."""
    for rows in export_rows(flt):
        yield "".join(
            json.dumps(dict(zip(EXPORT_FIELDS, row, strict=True)), ensure_ascii=False) + "\n"
            for row in rows
        ).encode()
