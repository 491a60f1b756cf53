"""The webhook intake: authenticity first, each platform event stored once, malformed -> 4xx.

These run the real view in-process (Django's test client, real database, real signatures);
the end-to-end flows through server processes are in test_e2e_*.py.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.connectors import webhooks
from openline.connectors.models import InboundEvent
from openline.connectors.registry import connector_secrets, webhook_url
from openline.connectors.tests.helpers import (
    answer_platform_apis,
    body_bytes,
    connect,
    signature_headers,
)
from openline.core import secrets as vault
from openline.openchannels.models import ConnectionState, Connector
from openline.testing.fake_platforms import fixture

FIRST_MESSAGE = {
    "telegram": "telegram_update_text.json",
    "whatsapp": "whatsapp_text_message.json",
    "facebook": "messenger_text_message.json",
    "viber": "viber_message_text.json",
}
SIGNATURE_HEADER = {
    "telegram": "HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN",
    "whatsapp": "HTTP_X_HUB_SIGNATURE_256",
    "facebook": "HTTP_X_HUB_SIGNATURE_256",
    "viber": "HTTP_X_VIBER_CONTENT_SIGNATURE",
}


@pytest.fixture(autouse=True)
def _fresh_alive_marks():
    """Rolled-back tests reuse connector ids: forget this process's last_event_at marks."""
    webhooks._last_event_marks.clear()


class Connected(dict):
    """Messenger connectors of the channel, connected on first use (connecting costs calls)."""

    def __init__(self, channel, actor) -> None:
        super().__init__()
        self.channel, self.actor = channel, actor

    def __missing__(self, kind: str):
        self[kind] = connect(self.channel, kind, base="http://testserver", actor=self.actor)
        return self[kind]


@pytest.fixture
def connected(channel, fake_platform, administrator):
    """{kind: connector} for the channel, each messenger connected when first asked for."""
    answer_platform_apis(fake_platform)
    return Connected(channel, administrator)


def _path(connector) -> str:
    return webhook_url(connector, "http://testserver").removeprefix("http://testserver")


def _meta(headers: dict[str, str]) -> dict[str, str]:
    return {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()}


def post(connector, payload, *, headers: dict | None = None, sign: bool = True):
    """POST a (signed) webhook body to the connector's URL; return the response."""
    body = body_bytes(payload)
    signed = signature_headers(connector.kind, connector_secrets(connector), body) if sign else {}
    extra = _meta({**signed, **(headers or {})})
    return Client().post(_path(connector), data=body, content_type="application/json", **extra)


@pytest.mark.parametrize("kind", sorted(FIRST_MESSAGE))
def test_a_redelivered_event_is_stored_once(connected, kind):
    connector = connected[kind]
    payload = fixture(FIRST_MESSAGE[kind])
    first = post(connector, payload)
    again = post(connector, payload)
    assert (first.status_code, again.status_code) == (200, 200)
    stored = list(InboundEvent.objects.filter(connector=connector))
    assert len(stored) == 1
    assert stored[0].event["kind"] == "message"
    assert stored[0].state == "pending"
    connector.refresh_from_db()
    assert connector.last_event_at is not None


@pytest.mark.parametrize("kind", sorted(FIRST_MESSAGE))
@pytest.mark.parametrize("forgery", ["missing", "forged"])
def test_a_forged_or_unsigned_request_is_refused_and_leaves_no_trace(connected, kind, forgery):
    connector = connected[kind]
    payload = fixture(FIRST_MESSAGE[kind])
    if forgery == "missing":
        response = post(connector, payload, sign=False)
    else:
        forged = {"telegram": "not-the-secret", "viber": "0" * 64}.get(kind, "sha256=" + "0" * 64)
        header = SIGNATURE_HEADER[kind].removeprefix("HTTP_").replace("_", "-").title()
        response = post(connector, payload, sign=False, headers={header: forged})
    assert response.status_code in (401, 403)
    assert response.json() == {"error": "signature check failed"}
    assert not InboundEvent.objects.exists()
    connector.refresh_from_db()
    assert connector.last_event_at is None


def test_whatsapp_body_with_unicode_escapes_is_verified_over_its_raw_bytes(connected):
    vector = fixture("whatsapp_text_message_unicode_escapes.json")
    connector = connected["whatsapp"]
    raw = vector["raw_body"].encode()
    accepted = Client().post(
        _path(connector),
        data=raw,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=vector["header_value"],
    )
    assert accepted.status_code == 200
    (event,) = InboundEvent.objects.filter(connector=connector)
    assert event.event["client"]["name"] == "Zoë"
    assert "\U0001f60a" in event.event["text"]
    # The same JSON re-serialised (real UTF-8 instead of escapes) no longer matches.
    reserialised = json.dumps(json.loads(raw), ensure_ascii=False).encode()
    refused = Client().post(
        _path(connector),
        data=reserialised,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=vector["header_value"],
    )
    assert refused.status_code in (401, 403)
    assert InboundEvent.objects.count() == 1


def test_a_whatsapp_batch_of_two_messages_is_stored_whole(connected):
    connector = connected["whatsapp"]
    assert post(connector, fixture("whatsapp_text_message_batch_two.json")).status_code == 200
    texts = [e.event["text"] for e in InboundEvent.objects.filter(connector=connector)]
    assert len(texts) == 2
    assert texts[0] == "Hello?"


def test_unknown_token_kind_or_disabled_connector_is_not_found(connected):
    connector = connected["telegram"]
    payload = fixture("telegram_update_text.json")
    body = body_bytes(payload)
    headers = _meta(signature_headers("telegram", connector_secrets(connector), body))
    client = Client()
    for path in (
        f"/hooks/telegram/{'x' * 43}/",
        f"/hooks/nosuch/{connector.webhook_token}/",
        f"/hooks/viber/{connector.webhook_token}/",
    ):
        response = client.post(path, data=body, content_type="application/json", **headers)
        assert response.status_code == 404
    connector.is_enabled = False
    connector.save(update_fields=["is_enabled"])
    response = client.post(_path(connector), data=body, content_type="application/json", **headers)
    assert response.status_code == 404
    assert not InboundEvent.objects.exists()


def test_an_oversized_body_is_refused(connected):
    connector = connected["telegram"]
    payload = fixture("telegram_update_text.json")
    payload["message"]["text"] = "x" * (1024 * 1024 + 10)
    response = post(connector, payload)
    assert response.status_code == 413
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize("kind", ["whatsapp", "facebook"])
def test_the_meta_handshake_confirms_a_waiting_connector(connected, kind):
    connector = connected[kind]
    assert connector.state == ConnectionState.PENDING  # Meta confirms by calling us
    verify_token = connector_secrets(connector)["verify_token"]
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": "wrong"}
    refused = Client().get(_path(connector), query)
    assert refused.status_code == 403
    connector.refresh_from_db()
    assert connector.state == ConnectionState.PENDING
    answered = Client().get(_path(connector), {**query, "hub.verify_token": verify_token})
    assert answered.status_code == 200
    assert answered.content == b"1158201444"
    connector.refresh_from_db()
    assert connector.state == ConnectionState.CONNECTED
    assert connector.connected_at is not None


def test_a_burst_of_webhooks_enqueues_one_processing_task(
    connected, django_capture_on_commit_callbacks
):
    from django_tasks_db.models import DBTaskResult

    connector = connected["telegram"]
    for update_id in range(700001000, 700001005):
        payload = fixture("telegram_update_text.json")
        payload["update_id"] = update_id
        with django_capture_on_commit_callbacks(execute=True):
            assert post(connector, payload).status_code == 200
    assert InboundEvent.objects.filter(connector=connector).count() == 5
    queued = DBTaskResult.objects.filter(
        task_path="openline.connectors.tasks.process_inbound", status="READY"
    )
    assert [q.args_kwargs["kwargs"] for q in queued] == [{"connector_id": connector.pk}]


# ----- fuzzing: whatever arrives signed, the answer is 2xx or 4xx, never 500 ------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
telegram_like = st.fixed_dictionaries(
    {"update_id": st.integers(min_value=-(10**30), max_value=10**30) | st.text(max_size=5)},
    optional={
        "message": st.fixed_dictionaries(
            {},
            optional={
                "message_id": json_values,
                "from": json_values,
                "chat": st.fixed_dictionaries(
                    {"id": st.integers() | st.text(max_size=3)}, optional={"type": json_values}
                ),
                "text": st.text(),
                "date": st.integers(min_value=-(10**20), max_value=10**20) | json_values,
            },
        ),
        "callback_query": json_values,
        "my_chat_member": json_values,
    },
)
odd_bodies = (
    st.binary(max_size=200)
    | st.just(b"[" * 5000 + b"]" * 5000)
    | st.just(b'{"update_id": ' + b"9" * 5000 + b"}")
    | st.just(b'{"update_id": 1, "message": {"text": "\\ud800\\u0000", "chat": {"id": 5}}}')
)

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(body=telegram_like.map(lambda d: json.dumps(d).encode()) | odd_bodies)
def test_fuzzed_telegram_bodies_get_a_4xx_never_a_500(connected, body):
    response = post(connected["telegram"], body)
    assert response.status_code in (200, 400), response.content


@FUZZ
@given(
    body=st.fixed_dictionaries(
        {"object": st.sampled_from(["whatsapp_business_account", "page"]), "entry": json_values}
    ).map(lambda d: json.dumps(d).encode())
    | odd_bodies,
    kind=st.sampled_from(["whatsapp", "facebook", "viber"]),
)
def test_fuzzed_signed_meta_and_viber_bodies_get_a_4xx_never_a_500(connected, body, kind):
    response = post(connected[kind], body)
    assert response.status_code in (200, 400), response.content


# ----- connection state: signatures, handshake, the few-seconds cache ------------------------


@pytest.fixture
def clean_cache():
    """Rolled-back tests reuse connector ids: start with no signature failure counts."""
    cache.clear()
    yield
    cache.clear()


def _forge(connector):
    payload = fixture(FIRST_MESSAGE[connector.kind])
    forged = {"telegram": "not-the-secret", "viber": "0" * 64}.get(
        connector.kind, "sha256=" + "0" * 64
    )
    header = SIGNATURE_HEADER[connector.kind].removeprefix("HTTP_").replace("_", "-").title()
    return post(connector, payload, sign=False, headers={header: forged})


def test_signature_failures_are_counted_in_the_cache_and_shown_on_the_page(
    connected, clean_cache, admin_client
):
    connector = connected["whatsapp"]
    before = Connector.objects.filter(pk=connector.pk).values().get()
    for _ in range(3):
        assert _forge(connector).status_code in (401, 403)
    assert webhooks.signature_failures(connector_id=connector.pk) == 3
    # Nothing of the forged requests reaches the database, not even on the connector row.
    assert Connector.objects.filter(pk=connector.pk).values().get() == before
    assert not InboundEvent.objects.exists()
    page = admin_client.get(
        f"/console/contact-center/{connector.channel_id}/connectors/whatsapp/"
    ).content.decode()
    assert "3 requests failed the signature check in the last hour" in page
    assert "check the app secret" in page
    # Other connectors keep their own count.
    assert webhooks.signature_failures(connector_id=connected["viber"].pk) == 0


def test_a_correctly_signed_post_confirms_a_pending_meta_connector(connected, clean_cache):
    connector = connected["facebook"]
    assert connector.state == ConnectionState.PENDING
    assert _forge(connector).status_code in (401, 403)
    connector.refresh_from_db()
    assert connector.state == ConnectionState.PENDING  # a forgery proves nothing
    assert post(connector, fixture(FIRST_MESSAGE["facebook"])).status_code == 200
    connector.refresh_from_db()
    assert connector.state == ConnectionState.CONNECTED and connector.connected_at is not None


def test_a_connected_connector_costs_no_state_write_per_request(connected):
    connector = connected["viber"]
    assert connector.state == ConnectionState.CONNECTED
    assert post(connector, fixture(FIRST_MESSAGE["viber"])).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        again = fixture(FIRST_MESSAGE["viber"])
        again["message_token"] = int(again["message_token"]) + 1
        assert post(connector, again).status_code == 200
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert not any("openchannels_connector" in sql for sql in updates), updates


def test_the_handshake_reads_the_verify_token_from_the_database(connected):
    connector = connected["whatsapp"]
    old_token = connector_secrets(connector)["verify_token"]
    query = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "wrong"}
    assert Client().get(_path(connector), query).status_code == 403  # fills the cache
    # Another process replaces the verify token: no signal reaches this process's cache.
    secrets = {**connector_secrets(connector), "verify_token": "a-replaced-verify-token"}
    Connector.objects.filter(pk=connector.pk).update(secrets=vault.encrypt_json(secrets))
    stale = Client().get(_path(connector), {**query, "hub.verify_token": old_token})
    assert stale.status_code == 403
    connector.refresh_from_db()
    assert connector.state == ConnectionState.PENDING
    fresh = Client().get(_path(connector), {**query, "hub.verify_token": "a-replaced-verify-token"})
    assert fresh.status_code == 200
    connector.refresh_from_db()
    assert connector.state == ConnectionState.CONNECTED


def test_a_handshake_after_a_disconnect_elsewhere_confirms_nothing(connected):
    connector = connected["whatsapp"]
    token = connector_secrets(connector)["verify_token"]
    query = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": "wrong"}
    assert Client().get(_path(connector), query).status_code == 403  # fills the cache
    Connector.objects.filter(pk=connector.pk).update(is_enabled=False)
    answered = Client().get(_path(connector), {**query, "hub.verify_token": token})
    assert answered.status_code == 404
    connector.refresh_from_db()
    assert connector.state == ConnectionState.PENDING


def test_a_request_checked_against_replaced_credentials_confirms_nothing(connected, clean_cache):
    connector = connected["whatsapp"]
    payload = fixture(FIRST_MESSAGE["whatsapp"])
    assert _forge(connector).status_code in (401, 403)  # fills this process's cache
    # Another process saves a new app secret; this process still checks the old one.
    secrets = {**connector_secrets(connector), "app_secret": "a-new-app-secret-0005"}
    Connector.objects.filter(pk=connector.pk).update(secrets=vault.encrypt_json(secrets))
    assert post(connector, payload).status_code == 200
    connector.refresh_from_db()
    assert connector.state == ConnectionState.PENDING
