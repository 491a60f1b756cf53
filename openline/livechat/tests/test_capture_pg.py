"""A new visitor's chat start in one PostgreSQL statement leaves what the ORM path leaves.

The same start goes through the lean path (``start_lean`` + ``capture_pg``) and through the
Django view (``OPENLINE_CAPTURE_FAST=0``, here the module switch) of a real uvicorn: equal
rows in every table a start writes (ids, uuids, timestamps, tokens left out), equal answers
and headers, equal events, equal webhook outbox rows, and a registry that seals and verifies.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import uuid

import httpx
import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.consent.models import ConsentRecord
from openline.consent.sealing import seal_pending
from openline.conversations import events
from openline.conversations.models import Conversation, Message, Visitor
from openline.livechat import capture_pg, start_lean
from openline.livechat.models import StartKey
from openline.livechat.tests.helpers import accepted_for
from openline.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)

# Values that differ between any two starts: ids, random values, timestamps, tokens.
VARYING = {
    "id",
    "uuid",
    "public_id",
    "visitor_public_id",
    "record_uuid",
    "record_id",
    "conversation_pk",
    "message_pk",
    "visitor_id",
    "conversation_id",
    "message_id",
    "event_id",
    "conversation",
    "message",
    "record",
    "token",
    "visitor",
    "visitor_pseudonym",
    "visitor_label",
    "key",
    "created_at",
    "started_at",
    "last_message_at",
    "last_seen_at",
    "next_attempt_at",
    "timestamp",
}
_PUBLIC = re.compile(r"[0-9a-f]{32}|Visitor [0-9a-f]{8}")


def normalise(value, key: str = ""):
    """Replace what varies from start to start by a marker of its type; keep everything else."""
    if isinstance(value, dict):
        return {k: normalise(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    if key in VARYING:
        return f"<{type(value).__name__}>"
    if key == "order_key":
        return re.sub(r":\d+$", ":<id>", value)
    if isinstance(value, str):
        return _PUBLIC.sub("<public>", value)
    return value


def rows(channel, visitor_public_id) -> dict:
    """Every row one start wrote, normalised (the visitor's and what hangs off it)."""
    visitor = Visitor.objects.get(public_id=visitor_public_id)
    conversations = Conversation.objects.filter(visitor=visitor)
    ids = {c.pk for c in conversations}
    events_written = WebhookEvent.objects.filter(payload__data__conversation_id__in=list(ids))
    return {
        "visitor": normalise(list(Visitor.objects.filter(pk=visitor.pk).values())),
        "conversations": normalise(list(conversations.values())),
        "messages": normalise(list(Message.objects.filter(conversation__in=ids).values())),
        "records": normalise(list(ConsentRecord.objects.filter(visitor=visitor).values())),
        "start_keys": normalise(
            list(StartKey.objects.filter(visitor_public_id=visitor.public_id).values())
        ),
        "webhook_events": normalise(list(events_written.order_by("id").values())),
        "webhook_deliveries": normalise(
            list(
                WebhookDelivery.objects.filter(event__in=events_written)
                .order_by("event_id", "endpoint_id")
                .values()
            )
        ),
    }


@pytest.fixture
def recorded(monkeypatch):
    """Every event group list handed to the channel layer (``events.send_now``), in order."""
    sent: list = []
    original = events.send_now

    def record(groups, *, answer=None):
        sent.append([(re.sub(r"visitor\.[0-9a-f]+", "visitor.<public>", g), e) for g, e in groups])
        original(groups, answer=answer)

    monkeypatch.setattr(events, "send_now", record)
    return sent


@pytest.fixture
def lean(monkeypatch) -> list:
    """The starts the one-statement path stored (to prove which path answered)."""
    stored: list = []
    original = capture_pg.capture

    async def counted(*args, **kwargs):
        result = await original(*args, **kwargs)
        stored.append(result[0])
        return result

    monkeypatch.setattr(capture_pg, "capture", counted)
    return stored


@pytest.fixture
def endpoint(db):
    return WebhookEndpoint.objects.create(
        url="https://hooks.example/openline",
        events=["conversation.started", "consent.given", "message.received"],
        secret_encrypted="-",
    )


def _body(channel) -> dict:
    accepted = accepted_for(channel)
    return {
        "text": "Hello, is the team plan monthly? ünïcødé 👋",
        "client_id": "c-1",
        "language": "en",
        "page_url": "https://shop.example/pricing?plan=team",
        "consent": {
            "version": accepted.version_id,
            "language": accepted.language,
            "sha256": accepted.sha256,
        },
    }


def _start(server, channel, *, fast: bool, key: str | None, monkeypatch, recorded, lean) -> dict:
    monkeypatch.setattr(start_lean, "ENABLED", fast)
    recorded.clear()
    lean.clear()
    headers = {"User-Agent": "Mozilla/5.0 equivalence", "Accept-Language": "de"}
    if key:
        headers["Idempotency-Key"] = key
    response = httpx.post(
        f"{server.url}/widget/{channel.code}/start", json=_body(channel), headers=headers
    )
    assert response.status_code == 201, response.text
    data = response.json()
    assert [s.visitor.public_id.hex for s in lean] == ([data["visitor"]] if fast else [])
    skip = {"date", "expires", "content-length", "server"}
    return {
        "answer": normalise(data),
        "headers": sorted((k, v) for k, v in response.headers.items() if k not in skip),
        "rows": rows(channel, data["visitor"]),
        "events": normalise(list(recorded)),
        "sent": len(recorded),
    }


def verify() -> int:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("consent_verify", "--all", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.parametrize("key", [None, "equivalence-key-0001"])
def test_fast_and_orm_paths_leave_the_same_rows_answers_and_events(
    postgres_only, live_asgi, channel, endpoint, recorded, lean, monkeypatch, key
):
    fast = _start(
        live_asgi,
        channel,
        fast=True,
        key=key,
        monkeypatch=monkeypatch,
        recorded=recorded,
        lean=lean,
    )
    orm = _start(
        live_asgi,
        channel,
        fast=False,
        key=key and key.replace("0001", "0002"),
        monkeypatch=monkeypatch,
        recorded=recorded,
        lean=lean,
    )
    assert fast["answer"] == orm["answer"]
    assert fast["headers"] == orm["headers"]
    for table in fast["rows"]:
        assert fast["rows"][table] == orm["rows"][table], table
    assert fast["events"] == orm["events"]
    assert fast["sent"] == 2
    assert len(fast["rows"]["webhook_events"]) == 3
    assert len(fast["rows"]["webhook_deliveries"]) == 3
    assert len(fast["rows"]["records"]) == 1
    assert len(fast["rows"]["start_keys"]) == (1 if key else 0)
    seal_pending(wait_timeout=1.0)
    assert ConsentRecord.objects.count() == 2
    assert verify() == 0


def test_without_the_consent_gate_no_record_is_written_on_either_path(
    postgres_only, live_asgi, channel, administrator, recorded, lean, monkeypatch
):
    from openline.openchannels.services import update_consent_settings

    update_consent_settings(
        actor=administrator, channel=channel, consent_enabled=False, agreement=None
    )
    fast = _start(
        live_asgi,
        channel,
        fast=True,
        key=None,
        monkeypatch=monkeypatch,
        recorded=recorded,
        lean=lean,
    )
    orm = _start(
        live_asgi,
        channel,
        fast=False,
        key=None,
        monkeypatch=monkeypatch,
        recorded=recorded,
        lean=lean,
    )
    assert fast["answer"] == orm["answer"] and fast["answer"]["record"] == "<NoneType>"
    assert fast["rows"] == orm["rows"]
    assert fast["rows"]["records"] == [] and fast["rows"]["webhook_events"] == []
    assert fast["events"] == orm["events"]


@pytest.mark.parametrize(
    "value",
    [
        {"text": "Grüße, 你好 🙂", "at": "2026-11-26T09:00:00+00:00"},
        {"text": "a lone \udc80 surrogate"},  # orjson refuses it: the standard library writes it
        {"n": 2**70},  # beyond 64 bits, likewise
        {1: "a key that is not text"},
        {
            "at": dt.datetime(
                2026, 11, 26, 9, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(seconds=19815))
            )
        },
        {"at": dt.datetime(2026, 11, 26, 9, 0, tzinfo=dt.UTC), "id": uuid.UUID(int=7)},
    ],
)
def test_jsonb_parameters_mean_the_same_whichever_encoder_wrote_them(value):
    import json

    from openline.livechat.capture_sql import _plain, json_text

    assert json.loads(json_text(value)) == json.loads(json.dumps(value, default=_plain))


def _bound_fields():
    from openline.livechat import capture_sql

    seen = {}
    for gate in (True, False):
        for keyed in (True, False):
            for prefix, bound in capture_sql.statement(gate, keyed).bound:
                for column, *_ in bound.columns:
                    seen[(prefix, column)] = bound
    return sorted(seen.items())


_VALUES = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.uuids(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC) | st.timezones()),
)


@given(value=_VALUES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_each_bound_value_is_prepared_as_its_field_prepares_it(value):
    """``row_json`` takes plain values as is: the same JSON as ``get_db_prep_save`` gives."""
    import json
    import types
    import warnings

    from django.core.exceptions import ValidationError

    from openline.livechat import capture_sql

    conn = capture_sql.ops()
    for (_, column), bound in _bound_fields():
        entry = next(e for e in bound.columns if e[0] == column)
        field = entry[3]
        one = capture_sql.Bound(columns=(entry,))
        obj = types.SimpleNamespace(**{field.attname: value})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a naive datetime: the field warns either way
            try:
                expected = json.loads(
                    json.dumps(
                        {column: field.get_db_prep_save(value, conn)}, default=capture_sql._plain
                    )
                )
            except (ValidationError, ValueError, TypeError, AttributeError, OverflowError) as exc:
                with pytest.raises(type(exc)):
                    capture_sql.row_json(obj, one, conn)
                continue
            assert json.loads(capture_sql.row_json(obj, one, conn)) == expected, (column, value)
