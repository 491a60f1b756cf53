"""The one statement of a new visitor's chat start (see ``capture_pg``), built from the models.

Every column list comes from the models' concrete fields, so the statement writes exactly the
columns the ORM writes. Each row's values arrive as one JSON object read with
``jsonb_populate_record`` into the table's own row type; the guard (``ok``) compares what the
process keeps with the rows it came from, and every write selects from it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import ipaddress
import json
import re
import uuid

import orjson
from django.db import connections, models
from psycopg.types.json import Jsonb

from openline.consent.models import AgreementVersion, ConsentRecord
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat.models import StartKey
from openline.openchannels.models import Connector, OpenChannel
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent


def ops():
    # Only the backend's value adaptation is used (no connection is opened here).
    return connections["default"]


_TEXT_TYPES = {"CharField", "TextField", "EmailField", "SlugField", "URLField"}


def _cast(field, conn) -> str:
    if field.get_internal_type() in _TEXT_TYPES:
        return "text"  # assigned to varchar(n): too long is refused, never cut
    return field.db_type(conn)


def _insert(
    model,
    prefix: str,
    *,
    source: str,
    tail: str = "",
    overrides: dict[str, str] | None = None,
    pk: bool = False,
):
    """``INSERT INTO <model> (...) SELECT ... FROM <source> <tail>``: (sql, fields bound).

    The bound fields' values arrive as one JSON object, the parameter ``<prefix>``, read with
    ``jsonb_populate_record`` into the table's own row type: each value goes through its
    column's input function (a too long text is refused, never cut).
    """
    conn = ops()
    overrides = overrides or {}
    table = conn.ops.quote_name(model._meta.db_table)
    columns, values, bound = [], [], []
    for field in model._meta.concrete_fields:
        if field.primary_key and not pk:
            continue
        column = conn.ops.quote_name(field.column)
        columns.append(column)
        if field.attname in overrides:
            values.append(overrides[field.attname])
        else:
            values.append(f"r_{prefix}.{column}")
            bound.append(field)
    row = f"jsonb_populate_record(NULL::{table}, %({prefix})s::jsonb) AS r_{prefix}"
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)}"
        f" FROM {source} CROSS JOIN {row} {tail}"
    )
    return sql, bound


def _plain(value):
    """JSON for a value as the backend prepares it for its column (``get_db_prep_save``)."""
    if isinstance(value, Jsonb):
        return value.obj
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(
        value, uuid.UUID | decimal.Decimal | ipaddress.IPv4Address | ipaddress.IPv6Address
    ):
        return str(value)
    raise TypeError(f"no JSON form for {type(value).__name__}")


# Datetimes and dataclasses go through _plain, as with the standard library (orjson would cut a
# UTC offset's seconds and serialise dataclasses that json.dumps refuses).
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def json_text(value) -> str:
    """JSON for a ``jsonb`` parameter: orjson (several times faster), or the standard library
    for what orjson refuses (a lone surrogate, an integer beyond 64 bits): PostgreSQL stores
    the same value either way. No float reaches it (orjson writes a NaN as null, where the
    standard library's NaN would be refused by PostgreSQL)."""
    try:
        return orjson.dumps(value, default=_plain, option=_ORJSON_OPTIONS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value, default=_plain)


# Field classes whose ``get_db_prep_save`` returns a value of the plain type unchanged (on
# PostgreSQL): text as is, integers as is, an aware datetime as is (adapt_datetimefield_value),
# a UUID as is (native uuid column). Only these exact classes: a subclass may convert.
_TEXT_FIELDS = (models.CharField, models.TextField, models.EmailField, models.SlugField)
_INTEGER_FIELDS = (
    models.BigAutoField,
    models.AutoField,
    models.BigIntegerField,
    models.IntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
    models.SmallIntegerField,
)
_AS_IS: dict[type, tuple[type, ...]] = {
    **dict.fromkeys(_TEXT_FIELDS, (str,)),
    **dict.fromkeys(_INTEGER_FIELDS, (int,)),
    models.BooleanField: (bool,),
    models.UUIDField: (uuid.UUID,),
    models.DateTimeField: (dt.datetime,),
}


def _plain_type(field) -> tuple[type, ...]:
    """The value types ``field.get_db_prep_save`` returns unchanged, or () when unknown."""
    target = field.target_field if type(field) is models.ForeignKey else field
    return _AS_IS.get(type(target), ())


@dataclasses.dataclass(frozen=True)
class Bound:
    """A bound row parameter: each field's column, attname and the value types kept as is."""

    columns: tuple[tuple[str, str, tuple[type, ...], object], ...]

    @classmethod
    def of(cls, fields) -> Bound:
        return cls(tuple((f.column, f.attname, _plain_type(f), f) for f in fields))


def row_json(obj, bound: Bound, conn) -> str:
    """The row's JSON object: each field's value as ``get_db_prep_save`` prepares it.

    A value of its field's plain type (a str for text, an int, an aware datetime, a UUID) is
    what ``get_db_prep_save`` returns unchanged (None too, for these fields), so it is taken as
    is; anything else (any value of another field, a naive datetime, a lazy string) goes
    through the field.
    """
    row = {}
    for column, attname, plain, field in bound.columns:
        value = getattr(obj, attname)
        if plain and (value is None or (type(value) in plain and _kept(value))):
            row[column] = value
        else:
            row[column] = field.get_db_prep_save(value, conn)  # type: ignore[attr-defined]
    return json_text(row)


def _kept(value) -> bool:
    # An aware datetime is stored as is; a naive one goes through the field (warning, zone).
    return type(value) is not dt.datetime or value.utcoffset() is not None


def _table(model) -> str:
    return ops().ops.quote_name(model._meta.db_table)


def _column(model, name: str) -> str:
    return ops().ops.quote_name(model._meta.get_field(name).column)


# The channel's columns that the rows copy or that decide the start: equal, or nothing is written.
CHANNEL_CHECKS = (
    "code",
    "name",
    "consent_enabled",
    "agreement_id",
    "messenger_consent_mode",
    "messenger_warning_text",
    "withdraw_keywords",
    "unconfirmed_retention_days",
)


@dataclasses.dataclass(frozen=True)
class Statement:
    sql: str  # with $1, $2, ... placeholders: sent as is, never parsed again
    names: tuple[str, ...]  # the parameter behind each placeholder
    compared: tuple  # the channel's fields compared with what this process read
    bound: tuple[tuple[str, Bound], ...]  # (prefix, its fields) of every row parameter

    def values(self, params: dict) -> list:
        return [params[name] for name in self.names]


_statements: dict[tuple[bool, bool], Statement] = {}


def _guard(gate: bool) -> tuple[str, list[tuple[str, object]]]:
    conn = ops()
    compared: list = []
    checks = []
    channel_fields = {f.attname: f for f in OpenChannel._meta.concrete_fields}
    for name in CHANNEL_CHECKS:
        field = channel_fields[name]
        checks.append(
            f"ch.{conn.ops.quote_name(field.column)} IS NOT DISTINCT FROM "
            f"%(channel_{field.attname})s::{_cast(field, conn)}"
        )
        compared.append(field)
    agreement = AgreementVersion._meta.get_field("agreement").related_model
    sql = f"""
        SELECT 1 AS one FROM {_table(OpenChannel)} AS ch
        WHERE ch.id = %(channel_id)s AND ch.is_active AND {" AND ".join(checks)}
          AND EXISTS (SELECT 1 FROM {_table(Connector)} AS cn
                      WHERE cn.{_column(Connector, "channel")} = ch.id
                        AND cn.kind = %(connector_kind)s::text AND cn.is_enabled)
          AND NOT EXISTS (SELECT 1 FROM {_table(WebhookEndpoint)} AS e
                          WHERE e.is_active AND NOT (e.id = ANY(%(known_endpoints)s::bigint[]))
                            AND jsonb_exists_any(e.events, %(hook_types)s::text[]))"""
    if gate:
        sql += f"""
          AND (SELECT v.id FROM {_table(AgreementVersion)} AS v
               WHERE v.{_column(AgreementVersion, "agreement")} = ch.agreement_id
               ORDER BY v.number DESC LIMIT 1) = %(version_id)s::bigint
          AND EXISTS (SELECT 1 FROM {_table(agreement)} AS a WHERE a.id = ch.agreement_id
                      AND a.name = %(agreement_name)s::text
                      AND a.default_language = %(default_language)s::text)"""
    return sql, compared


def statement(gate: bool, keyed: bool) -> Statement:
    """The start's one statement: with or without the consent record and the start key."""
    cached = _statements.get((gate, keyed))
    if cached is not None:
        return cached
    guard, compared = _guard(gate)
    bound: list[tuple[str, Bound]] = []
    ctes = [f"ok AS ({guard})"]
    if keyed:
        sql, fields = _insert(StartKey, "key", source="ok")
        conflict = f"{_column(StartKey, 'channel')}, {_column(StartKey, 'key')}"
        ctes.append(f"k AS ({sql} ON CONFLICT ({conflict}) DO NOTHING RETURNING 1 AS one)")
        bound.append(("key", Bound.of(fields)))
        ctes.append("go AS (SELECT one FROM k)")
    else:
        ctes.append("go AS (SELECT one FROM ok)")
    writes = [("visitor", Visitor, True), ("conversation", Conversation, True)]
    if gate:
        writes.append(("record", ConsentRecord, False))
    writes.append(("message", Message, True))
    for prefix, model, pk in writes:
        sql, fields = _insert(model, prefix, source="go", pk=pk)
        ctes.append(f"w_{prefix} AS ({sql} RETURNING 1)")
        bound.append((prefix, Bound.of(fields)))
    endpoints = _table(WebhookEndpoint)
    sql, fields = _insert(
        WebhookEvent,
        "hook_event",
        source=(
            "go CROSS JOIN jsonb_to_recordset(%(hook_events)s::jsonb)"
            " AS x(uuid uuid, type text, payload jsonb, n int)"
        ),
        tail=(
            f"WHERE EXISTS (SELECT 1 FROM {endpoints} AS e"
            " WHERE e.is_active AND jsonb_exists(e.events, x.type)) ORDER BY x.n"
        ),
        overrides={"uuid": "x.uuid", "type": "x.type", "payload": "x.payload"},
    )
    ctes.append(f"ev AS ({sql} RETURNING id, uuid, type)")
    bound.append(("hook_event", Bound.of(fields)))
    sql, fields = _insert(
        WebhookDelivery,
        "hook_delivery",
        source=(
            "ev JOIN jsonb_to_recordset(%(hook_deliveries)s::jsonb)"
            " AS d(uuid uuid, endpoint bigint, message_id text, order_key text)"
            f" ON d.uuid = ev.uuid JOIN {endpoints} AS e ON e.id = d.endpoint AND e.is_active"
            " AND jsonb_exists(e.events, ev.type)"
        ),
        tail="ORDER BY ev.id, e.id",
        overrides={
            "endpoint_id": "e.id",
            "event_id": "ev.id",
            "message_id": "d.message_id",
            "order_key": "d.order_key",
        },
    )
    ctes.append(f"dl AS ({sql} RETURNING 1 AS one)")
    bound.append(("hook_delivery", Bound.of(fields)))
    sql = (
        "WITH "
        + ",\n".join(ctes)
        + f"""
        SELECT (SELECT count(*) FROM ok), (SELECT count(*) FROM go), (SELECT count(*) FROM dl),
               ARRAY(SELECT e.id FROM {endpoints} AS e WHERE e.is_active ORDER BY e.id)"""
    )
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    statement = Statement(
        sql=re.sub(r"%\((\w+)\)s", number, sql),
        names=tuple(names),
        compared=tuple(compared),
        bound=tuple(bound),
    )
    _statements[(gate, keyed)] = statement
    return statement
