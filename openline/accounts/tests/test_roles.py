"""Every console URL and every API operation answers each role as this file says.

The expected roles are written here, in two literal tables, and NOT read from the views'
own ``role_required`` declarations: a view that widens or narrows its roles by mistake
fails this test. Each row also names every HTTP method the view serves, and each method is
sent as an anonymous visitor, an administrator, an operator and an auditor. A console URL
or API operation missing from the tables fails the suite, so new views cannot slip past.

Every request runs inside a rolled-back savepoint, so a POST that changes state (toggle a
consent, close a chat, delete a client) does not change what the next role sees.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from openline.accounts.models import Role

ADMIN = Role.ADMINISTRATOR
OPERATOR = Role.OPERATOR
AUDITOR = Role.AUDITOR
ALL = frozenset({ADMIN, OPERATOR, AUDITOR})
ADMIN_ONLY = frozenset({ADMIN})
STAFF = frozenset({ADMIN, OPERATOR})  # people who answer chats and work the CRM
READERS = frozenset({ADMIN, AUDITOR})  # people who read the consent registry
NOBODY: frozenset[str] = frozenset()

GET = ("GET",)
POST = ("POST",)
FORM = ("GET", "POST")

# url name -> (roles allowed, methods the view serves). Allowed roles get 2xx/3xx for
# every method (an empty POST re-renders a form with errors or acts and redirects);
# other roles get 403; anonymous visitors are redirected to the login page.
CONSOLE: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "core:home": (ALL, GET),
    # Users
    "accounts:users": (ADMIN_ONLY, GET),
    "accounts:user_create": (ADMIN_ONLY, FORM),
    "accounts:user_edit": (ADMIN_ONLY, FORM),
    "accounts:user_reset_password": (ADMIN_ONLY, FORM),
    "accounts:password_change": (ALL, FORM),  # everyone changes their own password
    "accounts:profile": (ALL, FORM),  # everyone sets their own name and picture
    "accounts:tokens": (ALL, FORM),  # everyone manages their own API tokens
    "accounts:token_revoke": (ALL, FORM),
    # Consents (wording) and Obtained consents (the registry)
    "consent:agreements": (ADMIN_ONLY, GET),
    "consent:agreement_create": (ADMIN_ONLY, FORM),
    "consent:agreement_preview": (ADMIN_ONLY, POST),
    "consent:agreement_edit": (ADMIN_ONLY, FORM),
    "consent:agreement_languages": (ADMIN_ONLY, FORM),
    "consent:agreement_set_active": (ADMIN_ONLY, POST),
    "consent:agreement_versions": (READERS, GET),
    "consent:version_detail": (READERS, GET),
    "consent:version_diff": (READERS, GET),
    "consent:audit": (READERS, GET),
    "consent:records": (READERS, GET),
    "consent:records_export": (READERS, GET),
    "consent:record_detail": (READERS, GET),
    "consent:record_receipt": (READERS, GET),
    # A conversation's read-only transcript (operators: only their channels', else 404)
    "consent:transcript": (ALL, GET),
    # Verify registry (runs in the background; auditors start it too)
    "consent:registry": (READERS, GET),
    "consent:registry_verify": (READERS, POST),
    "consent:registry_run": (READERS, GET),
    "consent:registry_run_status": (READERS, GET),
    # Contact center
    "openchannels:contact_center": (STAFF, GET),
    "openchannels:connector": (STAFF, GET),
    "openchannels:create": (ADMIN_ONLY, FORM),
    "openchannels:set_active": (ADMIN_ONLY, POST),
    "openchannels:configure_default": (ADMIN_ONLY, FORM),
    "openchannels:configure": (ADMIN_ONLY, FORM),
    # Messenger connection pages (credentials): administrators only
    "connector_pages:settings": (ADMIN_ONLY, FORM),
    "connector_pages:disconnect": (ADMIN_ONLY, POST),
    "conversations:livechat_settings": (ADMIN_ONLY, FORM),
    # Inbox
    "conversations:inbox": (STAFF, GET),
    "conversations:conversation": (STAFF, GET),
    "conversations:close": (STAFF, POST),
    "conversations:transfer": (STAFF, POST),
    "conversations:resend": (STAFF, POST),
    "conversations:record_withdrawal": (STAFF, POST),
    "conversations:add_note": (STAFF, POST),
    "conversations:canned_replies": (STAFF, GET),
    "conversations:canned_create": (STAFF, FORM),
    "conversations:canned_json": (STAFF, GET),
    "conversations:canned_edit": (STAFF, FORM),
    "conversations:canned_delete": (STAFF, FORM),
    # CRM
    "crm:items": (STAFF, GET),
    "crm:item": (STAFF, GET),
    "crm:item_edit": (STAFF, FORM),
    "crm:item_convert": (STAFF, POST),
    "crm:item_note": (STAFF, POST),
    "crm:item_delete": (STAFF, FORM),
    "crm:item_export": (ADMIN_ONLY, GET),
    "crm:save_conversation": (STAFF, FORM),
    "crm:awaiting": (STAFF, GET),
    "crm:awaiting_delete": (STAFF, POST),
    # Outgoing webhooks
    "webhooks:endpoints": (ADMIN_ONLY, GET),
    "webhooks:endpoint_create": (ADMIN_ONLY, FORM),
    "webhooks:endpoint": (ADMIN_ONLY, GET),
    "webhooks:endpoint_edit": (ADMIN_ONLY, FORM),
    "webhooks:endpoint_rotate": (ADMIN_ONLY, POST),
    "webhooks:endpoint_toggle": (ADMIN_ONLY, POST),
    "webhooks:endpoint_delete": (ADMIN_ONLY, FORM),
    "webhooks:delivery_resend": (ADMIN_ONLY, POST),
}

# (method, path under /api/v1/) -> (roles allowed, exact status for them). Anonymous: 401.
API: dict[tuple[str, str], tuple[frozenset[str], int]] = {
    ("GET", "/consents/records"): (READERS, 200),
    ("POST", "/consents/records"): (ADMIN_ONLY, 201),
    ("GET", "/consents/records/{record_id}"): (READERS, 200),
    ("GET", "/consents/records/{record_id}/receipt"): (READERS, 200),
    ("POST", "/consents/withdrawals"): (ADMIN_ONLY, 201),
    # Verify registry and the signed checkpoints: administrators and auditors, as the console.
    ("POST", "/consents/verify"): (READERS, 202),
    ("GET", "/consents/verify/{run_id}"): (READERS, 200),
    ("GET", "/consents/checkpoints"): (READERS, 200),
    ("GET", "/consents/checkpoints/{batch}"): (READERS, 200),
    # Records are append-only: every signed-in role is told so (405), nobody may change one.
    ("PUT", "/consents/records/{record_id}"): (ALL, 405),
    ("PATCH", "/consents/records/{record_id}"): (ALL, 405),
    ("DELETE", "/consents/records/{record_id}"): (ALL, 405),
    ("GET", "/crm/items"): (STAFF, 200),
    ("GET", "/crm/items/{item_id}"): (STAFF, 200),
    ("POST", "/crm/items"): (STAFF, 201),
    ("PATCH", "/crm/items/{item_id}"): (STAFF, 200),
    ("GET", "/crm/items/{item_id}/export"): (ADMIN_ONLY, 200),
    ("DELETE", "/crm/items/{item_id}"): (STAFF, 200),
    ("POST", "/crm/conversations/{conversation_id}/save"): (STAFF, 200),
    # Open Channels: as the console, operators read their channels; auditors see none.
    ("GET", "/open-channels"): (STAFF, 200),
    ("POST", "/open-channels"): (ADMIN_ONLY, 201),
    ("GET", "/open-channels/{channel_id}"): (STAFF, 200),
    ("PATCH", "/open-channels/{channel_id}"): (ADMIN_ONLY, 200),
    # An empty body reaches the credential check (422 naming the missing field), no platform.
    ("PUT", "/open-channels/{channel_id}/connectors/{kind}"): (ADMIN_ONLY, 422),
    ("GET", "/agreements"): (READERS, 200),
    ("POST", "/agreements"): (ADMIN_ONLY, 201),
    ("GET", "/agreements/{agreement_id}"): (READERS, 200),
    ("PATCH", "/agreements/{agreement_id}"): (ADMIN_ONLY, 200),
    ("GET", "/agreements/{agreement_id}/versions"): (READERS, 200),
    ("POST", "/agreements/{agreement_id}/versions"): (ADMIN_ONLY, 201),
    ("GET", "/agreements/{agreement_id}/versions/{number}"): (READERS, 200),
    ("GET", "/conversations"): (STAFF, 200),
    ("GET", "/conversations/{conversation_id}"): (STAFF, 200),
    ("GET", "/conversations/{conversation_id}/messages"): (STAFF, 200),
    ("POST", "/conversations/{conversation_id}/messages"): (STAFF, 201),
    ("POST", "/conversations/{conversation_id}/close"): (STAFF, 200),
    ("GET", "/conversations/{conversation_id}/transfer-targets"): (STAFF, 200),
    ("POST", "/conversations/{conversation_id}/transfer"): (STAFF, 200),
    ("GET", "/awaiting-consent"): (STAFF, 200),
    ("GET", "/awaiting-consent/{visitor_id}"): (STAFF, 200),
    ("DELETE", "/awaiting-consent/{visitor_id}"): (STAFF, 200),
    # Outgoing webhooks: administrators only, as in the console.
    ("GET", "/webhook-endpoints"): (ADMIN_ONLY, 200),
    ("POST", "/webhook-endpoints"): (ADMIN_ONLY, 201),
    ("GET", "/webhook-endpoints/{endpoint_id}"): (ADMIN_ONLY, 200),
    ("PATCH", "/webhook-endpoints/{endpoint_id}"): (ADMIN_ONLY, 200),
    ("DELETE", "/webhook-endpoints/{endpoint_id}"): (ADMIN_ONLY, 204),
    ("POST", "/webhook-endpoints/{endpoint_id}/rotate-secret"): (ADMIN_ONLY, 200),
    ("GET", "/webhook-endpoints/{endpoint_id}/deliveries"): (ADMIN_ONLY, 200),
    ("POST", "/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/resend"): (ADMIN_ONLY, 200),
    # Private notes: as the console, the channel's operators and administrators.
    ("GET", "/conversation-notes/{conversation_id}"): (STAFF, 200),
    ("POST", "/conversation-notes/{conversation_id}"): (STAFF, 201),
    # Canned replies: everyone who answers chats; the sample is shared, so administrators manage it.
    ("GET", "/canned-replies"): (STAFF, 200),
    ("POST", "/canned-replies"): (STAFF, 201),
    ("GET", "/canned-replies/{reply_id}"): (STAFF, 200),
    ("PATCH", "/canned-replies/{reply_id}"): (ADMIN_ONLY, 200),
    ("DELETE", "/canned-replies/{reply_id}"): (ADMIN_ONLY, 204),
    ("GET", "/consent-history"): (READERS, 200),
}


def _walk(resolver, prefix="", namespace=None):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            yield from _walk(entry, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), name, entry.callback


def console_views():
    """All URL patterns under /console/, with their names and callbacks."""
    return [
        (route, name, cb)
        for route, name, cb in _walk(get_resolver())
        if route.startswith("console/")
    ]


def api_operations() -> set[tuple[str, str]]:
    """Every (method, path) the API serves, including operations hidden from the schema."""
    from openline.api.api import api

    found = set()
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    found.add((method, "/" + (prefix.strip("/") + path).lstrip("/")))
    return found


@pytest.fixture
def samples(channel, administrator, operator):
    """Arguments for each console URL that takes any; extended by each app."""
    from openline.testing.url_samples import url_samples

    return url_samples(channel=channel, administrator=administrator, operator=operator)


@pytest.fixture
def clients(administrator, operator, auditor) -> dict[str, Client]:
    signed_in = {}
    for role, user in ((ADMIN, administrator), (OPERATOR, operator), (AUDITOR, auditor)):
        signed_in[role] = Client()
        signed_in[role].force_login(user)
    return signed_in


def send(client: Client, method: str, url: str, **kwargs):
    """Send one request and roll back whatever it changed."""
    with transaction.atomic():
        response = getattr(client, method.lower())(url, **kwargs)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        transaction.set_rollback(True)
    return response


def test_the_table_covers_every_console_url():
    served = {name for _, name, _ in console_views()}
    assert None not in served, "every console route needs a name"
    assert served - set(CONSOLE) == set(), "add these console URLs to CONSOLE with their roles"
    assert set(CONSOLE) - served == set(), "these CONSOLE rows name URLs that no longer exist"


def test_the_table_covers_every_api_operation():
    served = api_operations()
    assert served - set(API) == set(), "add these API operations to API with their roles"
    assert set(API) - served == set(), "these API rows name operations that no longer exist"


def test_every_console_view_declares_its_roles():
    missing = [
        name or route for route, name, cb in console_views() if not hasattr(cb, "allowed_roles")
    ]
    assert missing == [], f"console views without role_required: {missing}"


def served_methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The methods a row serves, with HEAD wherever GET is served."""
    return (*methods, "HEAD") if "GET" in methods else methods


def test_every_console_url_answers_each_role_as_the_table_says(samples, clients, operator):
    # A form the view needs to act at all (an empty transfer names nobody: 404).
    post_data = {"conversations:transfer": {"operator": operator.pk}}
    outcomes = []
    for name, (allowed, methods) in sorted(CONSOLE.items()):
        url = reverse(name, kwargs=samples.get(name, {}))
        for method in served_methods(methods):
            data = {"data": post_data.get(name, {})} if method == "POST" else {}
            anonymous = send(Client(), method, url, **data)
            outcomes.append(
                (
                    name,
                    method,
                    "anonymous",
                    anonymous.status_code == 302
                    and anonymous["Location"] == f"/login/?next={quote(url)}",
                    anonymous.status_code,
                )
            )
            for role, client in clients.items():
                status = send(client, method, url, **data).status_code
                ok = 200 <= status < 400 if role in allowed else status == 403
                outcomes.append((name, method, role, ok, status))
    wrong = [o for o in outcomes if not o[3]]
    assert wrong == [], f"unexpected answers (name, method, role, ok, status): {wrong}"
    served = sum(len(served_methods(methods)) for _, methods in CONSOLE.values())
    assert len(outcomes) == 4 * served


def test_console_urls_refuse_the_methods_the_table_does_not_list(samples, clients):
    wrong = []
    for name, (allowed, methods) in sorted(CONSOLE.items()):
        url = reverse(name, kwargs=samples.get(name, {}))
        # Someone allowed in: the refusal is about the method, not the role.
        client = clients[sorted(allowed)[0]]
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - set(methods):
            status = send(client, method, url).status_code
            if status != 405:
                wrong.append((name, method, status))
    assert wrong == [], f"methods a view does not serve must answer 405: {wrong}"


def _sealed_batch(sealing) -> int:
    from openline.consent.models import Checkpoint

    sealing.seal_pending()
    return Checkpoint.objects.order_by("-batch_number").values_list("batch_number", flat=True)[0]


@pytest.fixture
def api_targets(samples, channel, administrator):
    """Path parameters and bodies that reach an existing object for each API operation."""
    from openline.consent import runs, sealing
    from openline.consent.models import ConsentRecord
    from openline.conversations import canned
    from openline.conversations.models import Conversation

    record = ConsentRecord.objects.get(uuid=samples["consent:record_detail"]["record_uuid"])
    conversation = Conversation.objects.get(pk=samples["crm:save_conversation"]["conversation_id"])
    from django.utils import timezone

    from openline.conversations.models import Visitor

    awaiting = Visitor.objects.create(
        origin="telegram",
        channel=channel,
        external_id="5151",
        awaiting_consent_since=timezone.now(),
    )
    params = {
        "record_id": str(record.uuid),
        "item_id": str(samples["crm:item"]["pk"]),
        "conversation_id": str(conversation.pk),
        "channel_id": str(channel.pk),
        "kind": "telegram",
        "agreement_id": str(channel.agreement_id),
        "number": "1",
        "visitor_id": str(awaiting.public_id),
        "endpoint_id": str(samples["webhooks:endpoint"]["pk"]),
        "delivery_id": str(samples["webhooks:delivery_resend"]["pk"]),
        "run_id": str(runs.request_verification(actor=administrator).pk),
        "batch": str(_sealed_batch(sealing)),
        "reply_id": str(
            canned.create_canned_reply(
                actor=administrator, title="Hello", shortcut="hello", text="Hi!", shared=True
            ).pk
        ),
    }
    bodies = {
        ("POST", "/consents/records"): {
            "visitor_id": str(record.visitor.public_id),
            "consent_id": record.agreement_id,
            "ip": "203.0.113.8",
        },
        ("POST", "/consents/withdrawals"): {
            "visitor_id": str(record.visitor.public_id),
            "consent_id": record.agreement_id,
        },
        ("POST", "/crm/conversations/{conversation_id}/save"): {"name": "Sam Sample"},
        ("POST", "/crm/items"): {"kind": "lead", "name": "Robin", "source_channel_id": channel.pk},
        ("PATCH", "/crm/items/{item_id}"): {"name": "Sam Sample"},
        ("POST", "/open-channels"): {"name": "Shop"},
        ("PATCH", "/open-channels/{channel_id}"): {"name": "Website"},
        ("PUT", "/open-channels/{channel_id}/connectors/{kind}"): {},
        ("POST", "/agreements"): {"name": "Newsletter", "text": "We send you news."},
        ("PATCH", "/agreements/{agreement_id}"): {"name": "Privacy notice"},
        ("POST", "/agreements/{agreement_id}/versions"): {"texts": {"en": "New wording."}},
        ("POST", "/conversations/{conversation_id}/messages"): {"text": "Hello"},
        ("POST", "/conversations/{conversation_id}/close"): {},
        ("POST", "/webhook-endpoints"): {
            "url": "https://example.com/hooks",
            "events": ["consent.given"],
        },
        ("PATCH", "/webhook-endpoints/{endpoint_id}"): {"description": "Warehouse"},
        ("POST", "/conversations/{conversation_id}/transfer"): {
            "operator_id": channel.operators.get().pk
        },
        ("POST", "/conversation-notes/{conversation_id}"): {"text": "Call back on Monday."},
        ("POST", "/canned-replies"): {"title": "Bye", "shortcut": "bye", "text": "Goodbye!"},
        ("PATCH", "/canned-replies/{reply_id}"): {"text": "Hello there!"},
    }
    # An operator may delete only a client who never confirmed consent: use that one.
    delete_params = {**params, "item_id": str(samples["crm:item_delete"]["pk"])}
    return params, bodies, delete_params


def test_every_api_operation_answers_each_role_as_the_table_says(api_targets, clients):
    params, bodies, delete_params = api_targets
    outcomes = []
    for (method, template), (allowed, ok_status) in sorted(API.items()):
        values = (
            delete_params if (method, template) == ("DELETE", "/crm/items/{item_id}") else params
        )
        url = "/api/v1" + template.format(**{k: v for k, v in values.items() if k in template})
        body = bodies.get((method, template))
        kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
        anonymous = send(Client(), method, url, **kwargs).status_code
        outcomes.append((method, template, "anonymous", anonymous == 401, anonymous))
        for role, client in clients.items():
            status = send(client, method, url, **kwargs).status_code
            expected = ok_status if role in allowed else 403
            outcomes.append((method, template, role, status == expected, status))
    wrong = [o for o in outcomes if not o[3]]
    assert wrong == [], f"unexpected answers (method, path, role, ok, status): {wrong}"
    assert len(outcomes) == 4 * len(API)


def test_no_self_registration(client, db):
    assert client.get("/register/").status_code == 404
    assert client.get("/signup/").status_code == 404
    assert client.get("/accounts/signup/").status_code == 404
