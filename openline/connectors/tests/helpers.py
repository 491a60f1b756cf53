"""Shared pieces of the messenger intake tests: credentials, platform answers, signed requests.

The credentials are the fake ones of the wire fixtures (openline/testing/messenger_fixtures),
so the fixtures' signature vectors verify against connectors connected with them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from openline.testing.fake_platforms import Answer, FakePlatform, Recorded, fixture

META_APP_SECRET = fixture("whatsapp_signature_vector.json")["app_secret"]
VIBER_TOKEN = fixture("viber_signature_vector.json")["auth_token"]
TELEGRAM_TOKEN = "999000111:AAFakeTokenForTests0123456789abcdef"
WA_PHONE_ID = "200000000000002"
FB_PAGE_ID = "100200300400500"
FB_PSID = "2468013579246801"

SECRETS: dict[str, dict[str, str]] = {
    "telegram": {"bot_token": TELEGRAM_TOKEN},
    "whatsapp": {
        "access_token": "fake-wa-access-token-0123456789",
        "app_secret": META_APP_SECRET,
        "verify_token": "wa-verify-token-0123",
    },
    "facebook": {
        "page_access_token": "fake-page-access-token-0123456789",
        "app_secret": META_APP_SECRET,
        "verify_token": "fb-verify-token-0123",
    },
    "viber": {"auth_token": VIBER_TOKEN},
}
CONFIG: dict[str, dict[str, str]] = {
    "telegram": {},
    "whatsapp": {"phone_number_id": WA_PHONE_ID},
    "facebook": {"page_id": FB_PAGE_ID},
    "viber": {},
}
# Where each platform's send API lands on the fake platform server.
SEND_PATHS = {
    "telegram": r"/bot[^/]+/sendMessage",
    "whatsapp": rf"/v21\.0/{WA_PHONE_ID}/messages",
    "facebook": rf"/v21\.0/{FB_PAGE_ID}/messages",
    "viber": r"/pa/send_message",
}


class Counter:
    """Distinct platform message ids for successive sends (statuses refer to them)."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> int:
        self.n += 1
        return self.n


def answer_platform_apis(fake: FakePlatform) -> None:
    """Answer every API call Openline makes while connecting, sending and looking up names."""
    ids = Counter()
    ok_true = {"ok": True, "result": True}
    fake.route("POST", r"/bot[^/]+/getMe", fixture("telegram_get_me_response.json"))
    fake.route("POST", r"/bot[^/]+/(setWebhook|deleteWebhook|answerCallbackQuery)", ok_true)

    def telegram_sent(_request: Recorded) -> Answer:
        body = fixture("telegram_send_message_response.json")
        body["result"]["message_id"] = 5000 + ids.next()
        return Answer(body=body)

    fake.route("POST", r"/bot[^/]+/sendMessage", telegram_sent)
    fake.route("POST", r"/bot[^/]+/getUpdates", {"ok": True, "result": []})

    fake.route(
        "GET",
        rf"/v21\.0/{WA_PHONE_ID}",
        {
            "display_phone_number": "15550001111",
            "verified_name": "Openline Demo",
            "id": WA_PHONE_ID,
        },
    )

    def whatsapp_sent(_request: Recorded) -> Answer:
        body = fixture("whatsapp_send_text_response.json")
        body["messages"][0]["id"] = f"wamid.SENT{ids.next():06d}"
        return Answer(body=body)

    fake.route("POST", rf"/v21\.0/{WA_PHONE_ID}/messages", whatsapp_sent)

    fake.route("GET", rf"/v21\.0/{FB_PAGE_ID}", {"id": FB_PAGE_ID, "name": "Openline Demo Page"})
    fake.route("POST", rf"/v21\.0/{FB_PAGE_ID}/subscribed_apps", {"success": True})
    fake.route("GET", r"/v21\.0/\d{10,}", fixture("messenger_user_profile_response.json"))

    def messenger_sent(request: Recorded) -> Answer:
        recipient = (request.json() or {}).get("recipient", {}).get("id", FB_PSID)
        return Answer(body={"recipient_id": recipient, "message_id": f"m_SENT{ids.next():06d}"})

    fake.route("POST", rf"/v21\.0/{FB_PAGE_ID}/messages", messenger_sent)

    fake.route("POST", r"/pa/set_webhook", fixture("viber_set_webhook_response.json"))
    fake.route(
        "POST",
        r"/pa/get_account_info",
        {"status": 0, "status_message": "ok", "id": "pa:1", "name": "Openline Viber"},
    )
    fake.route("POST", r"/pa/get_user_details", fixture("viber_get_user_details_response.json"))

    def viber_sent(_request: Recorded) -> Answer:
        body = fixture("viber_send_message_response.json")
        body["message_token"] = 5900000000000100000 + ids.next()
        return Answer(body=body)

    fake.route("POST", r"/pa/send_message", viber_sent)


def connect(channel, kind: str, *, base: str, actor=None, mode: str = "webhook"):
    """Connect a messenger on ``channel`` through the one write path (the fake platform answers)."""
    from openline.connectors import setup

    connector = setup.connector_for(channel=channel, kind=kind)
    return setup.connect(
        actor=actor,
        connector=connector,
        secrets=dict(SECRETS[kind]),
        config=dict(CONFIG[kind]),
        mode=mode,
        base=base,
    )


def signature_headers(kind: str, secrets: dict, body: bytes) -> dict[str, str]:
    """The headers a platform adds to sign ``body`` (the exact bytes)."""
    if kind == "telegram":
        return {"X-Telegram-Bot-Api-Secret-Token": secrets["secret_token"]}
    if kind in ("whatsapp", "facebook"):
        digest = hmac.new(secrets["app_secret"].encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={digest}"}
    digest = hmac.new(secrets["auth_token"].encode(), body, hashlib.sha256).hexdigest()
    return {"X-Viber-Content-Signature": digest}


def body_bytes(payload: Any) -> bytes:
    """A webhook body as a platform writes it (compact JSON, non-ASCII escaped like Meta)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":")).encode()


def deliver(url: str, kind: str, secrets: dict, payload: Any, **kwargs) -> httpx.Response:
    """POST a signed webhook body to ``url`` over real HTTP."""
    body = body_bytes(payload)
    headers = {"Content-Type": "application/json", **signature_headers(kind, secrets, body)}
    headers.update(kwargs.pop("headers", {}))
    return httpx.post(url, content=body, headers=headers, timeout=10, **kwargs)


def eventually(check, *, timeout: float = 40.0, interval: float = 0.1):
    """Return ``check()``'s first truthy value, waiting up to ``timeout`` seconds.

    Generous by default: server and worker processes on a busy CI machine take seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {check.__doc__ or check}")
        time.sleep(interval)
