"""schemathesis against the live OpenAPI document: no server errors, every status documented.

A real uvicorn serves the API (``live_asgi``); the schema is read from it over HTTP, and
every operation is called with generated valid and invalid input as an administrator:
once signed in (session cookie and CSRF token, like the console's own JavaScript) and once
with a personal API token, as integrators call it.
"""

from __future__ import annotations

import time

import pytest
import requests
import schemathesis
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from openline.accounts.api_tokens import create_token
from openline.conversations.models import Conversation
from openline.crm.services import save_conversation_to_crm
from openline.testing.records import given_livechat_record

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
EXAMPLES = 20  # per operation and mode; about 500 requests, well under a minute
CSRF = "k" * 32  # an unmasked CSRF secret: Django accepts it as cookie and header alike


@pytest.fixture
def known_ids(channel, administrator) -> dict[str, object]:
    """A record, a CRM item and a conversation, so reads and writes also hit real rows."""
    record = given_livechat_record(channel)
    visitor = record.visitor
    conversation = Conversation.objects.create(channel=channel, visitor=visitor)
    saved = save_conversation_to_crm(
        actor=administrator,
        conversation=conversation,
        name="Vera Visitor",
        email="vera@example.com",
        phone="",
        kind=None,
        base_url="http://testserver",
    )
    return {
        "record_id": str(record.uuid),
        "item_id": saved.item.pk,
        "conversation_id": conversation.pk,
    }


@pytest.fixture
def admin_session(live_asgi, administrator) -> requests.Session:
    """A requests session signed in as Ada over the live server."""
    client = Client()
    client.force_login(administrator)
    session = requests.Session()
    sessionid = client.cookies[django_settings.SESSION_COOKIE_NAME].value
    session.headers["Cookie"] = (
        f"{django_settings.SESSION_COOKIE_NAME}={sessionid}; "
        f"{django_settings.CSRF_COOKIE_NAME}={CSRF}"
    )
    session.headers["X-CSRFToken"] = CSRF
    session.headers["Referer"] = live_asgi.url + "/"
    return session


@pytest.fixture
def admin_token_session(live_asgi, administrator) -> requests.Session:
    """A requests session carrying an API token of Ada's (no cookie, no CSRF token)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {create_token(administrator, 'fuzz').secret}"
    return session


@pytest.mark.parametrize("credentials", ["session", "token"])
def test_every_operation_answers_without_server_errors_and_as_documented(
    live_asgi, request, credentials, known_ids, settings
):
    # Hundreds of requests a minute: the rate limit has its own tests.
    settings.OPENLINE_API_RATE = (1_000_000, 60)
    # Fuzzed connector credentials must never reach a real messenger platform: a closed
    # loopback port refuses at once (the platform error is the connector's 4xx answer).
    settings.OPENLINE_TELEGRAM_API_URL = "http://127.0.0.1:9"
    settings.OPENLINE_GRAPH_API_URL = "http://127.0.0.1:9/v21.0"
    settings.OPENLINE_VIBER_API_URL = "http://127.0.0.1:9"
    fixture = "admin_session" if credentials == "session" else "admin_token_session"
    admin_session = request.getfixturevalue(fixture)
    schema = schemathesis.openapi.from_url(f"{live_asgi.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    failures: dict[str, str] = {}
    calls: dict[str, set[int]] = {}
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, live_asgi.url, admin_session, calls)
            except Exception as exc:  # noqa: BLE001 - collected, reported together below
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    # Then valid input on the rows that exist; the item is deleted last of all.
    with_ids = [op for op in operations if {p.name for p in op.path_parameters} & set(known_ids)]
    for operation in sorted(with_ids, key=lambda op: op.method.upper() == "DELETE"):
        fixed = {p.name: known_ids[p.name] for p in operation.path_parameters}
        try:
            _fuzz(operation, GenerationMode.POSITIVE, live_asgi.url, admin_session, calls, fixed)
        except Exception as exc:  # noqa: BLE001 - collected, reported together below
            failures[f"{operation.label} (existing rows)"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    # Every operation was really exercised past authentication, and the list operations,
    # which need no existing id, answered 200 to some valid input.
    assert set(calls) == {op.label for op in operations}
    assert all(codes - {401, 403} for codes in calls.values()), calls
    assert 200 in calls["GET /api/v1/consents/records"], calls
    assert 200 in calls["GET /api/v1/crm/items"], calls
    assert 200 in calls["GET /api/v1/consents/records/{record_id}"], calls
    assert 200 in calls["GET /api/v1/crm/items/{item_id}"], calls
    assert time.monotonic() - started < 240


def _fuzz(operation, mode, base_url: str, session, calls, path_parameters=None) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case):
        response = case.call_and_validate(
            base_url=base_url, session=session, checks=CHECKS, timeout=20
        )
        calls.setdefault(operation.label, set()).add(response.status_code)

    run()
