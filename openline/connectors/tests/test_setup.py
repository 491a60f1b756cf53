"""Connecting a messenger: "Connected" only after the platform confirmed the credentials."""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.utils import timezone

from openline.connectors import setup
from openline.connectors.tests.helpers import (
    CONFIG,
    SECRETS,
    TELEGRAM_TOKEN,
    answer_platform_apis,
)
from openline.connectors.tests.helpers import connect as connect_messenger
from openline.core import secrets as vault
from openline.openchannels.models import Connector
from openline.testing.fake_platforms import Answer, fixture

BASE = "https://openline.example"


@pytest.fixture(autouse=True)
def own_key_file(settings, tmp_path):
    settings.OPENLINE_SECRETS_KEYS = ""
    settings.OPENLINE_SECRETS_KEY_FILE = str(tmp_path / "fernet.keys")
    vault.forget_cached_keys()
    yield
    vault.forget_cached_keys()


@pytest.fixture
def platform(fake_platform):
    answer_platform_apis(fake_platform)
    return fake_platform


def page_url(channel, kind: str) -> str:
    return f"/console/contact-center/{channel.pk}/connectors/{kind}/"


def test_telegram_connects_with_get_me_and_a_random_secret_token(db, channel, platform):
    connector = connect_messenger(channel, "telegram", base=BASE)
    assert connector.state == "connected" and connector.connected_at is not None
    assert connector.config["detail"] == "@cc_support_test_bot" and connector.last_error == ""
    stored = vault.decrypt_json(connector.secrets)
    assert len(stored["secret_token"]) >= 32
    assert len(platform.calls(r"/bot[^/]+/getMe")) == 1
    (registered,) = platform.calls(r"/bot[^/]+/setWebhook")
    body = registered.json()
    assert body["secret_token"] == stored["secret_token"]
    assert body["url"] == f"{BASE}/hooks/telegram/{connector.webhook_token}/"
    assert len(connector.webhook_token) >= 32
    # Connecting again makes a new secret: an old registration stops being accepted.
    again = connect_messenger(channel, "telegram", base=BASE)
    assert vault.decrypt_json(again.secrets)["secret_token"] != stored["secret_token"]
    assert again.webhook_token == connector.webhook_token


def test_telegram_long_polling_removes_the_webhook_and_connects(db, channel, platform):
    connector = connect_messenger(channel, "telegram", base=BASE, mode="polling")
    assert connector.state == "connected" and connector.mode == "polling"
    assert platform.calls(r"/bot[^/]+/deleteWebhook") and not platform.calls(
        r"/bot[^/]+/setWebhook"
    )


def test_viber_connects_with_set_webhook(db, channel, platform):
    connector = connect_messenger(channel, "viber", base=BASE)
    assert connector.state == "connected"
    (registered,) = platform.calls(r"/pa/set_webhook")
    assert registered.json()["url"] == f"{BASE}/hooks/viber/{connector.webhook_token}/"
    assert registered.headers["x-viber-auth-token"] == SECRETS["viber"]["auth_token"]


@pytest.mark.parametrize("kind", ["whatsapp", "facebook"])
def test_meta_waits_for_the_handshake_before_connected(db, channel, platform, kind):
    connector = connect_messenger(channel, kind, base=BASE)
    assert connector.state == "pending" and connector.connected_at is None
    client = Client()
    path = f"/hooks/{kind}/{connector.webhook_token}/"
    wrong = client.get(
        path, {"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "42"}
    )
    assert wrong.status_code == 403
    connector.refresh_from_db()
    assert connector.state == "pending"
    verify_token = SECRETS[kind]["verify_token"]
    answer = client.get(
        path, {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "42"}
    )
    assert answer.status_code == 200 and answer.content == b"42"
    connector.refresh_from_db()
    assert connector.state == "connected"


def test_meta_verify_token_is_made_when_left_empty(db, channel, platform):
    connector = setup.connect(
        actor=None,
        connector=setup.connector_for(channel=channel, kind="whatsapp"),
        secrets={**SECRETS["whatsapp"], "verify_token": ""},
        config=CONFIG["whatsapp"],
        base=BASE,
    )
    assert len(vault.decrypt_json(connector.secrets)["verify_token"]) >= 24


def test_a_bad_token_is_an_error_never_connected(db, channel, platform, administrator):
    platform.route(
        "POST",
        r"/bot[^/]+/getMe",
        Answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
    )
    connector = connect_messenger(channel, "telegram", base=BASE)
    assert connector.state == "error" and connector.connected_at is None
    assert connector.last_error and connector.last_error_at is not None
    assert TELEGRAM_TOKEN not in connector.last_error
    assert not platform.calls(r"/bot[^/]+/setWebhook")
    client = Client()
    client.force_login(administrator)
    tab = client.get(f"/console/contact-center/open-channels/{channel.pk}/connectors/")
    html = tab.content.decode()
    assert "Error" in html and ">Connected<" not in html.replace("Live chat", "")
    listing = client.get("/console/contact-center/connectors/telegram/").content.decode()
    assert 'badge-ok">Connected' not in listing and "Error" in listing


def test_a_platform_that_is_down_is_an_error(db, channel, fake_platform):
    fake_platform.stop()  # nothing listens any more: a connection error, not an answer
    connector = connect_messenger(channel, "viber", base=BASE)
    assert connector.state == "error" and SECRETS["viber"]["auth_token"] not in connector.last_error


def test_required_fields_are_checked_before_anything_is_stored(db, channel, platform):
    with pytest.raises(Exception) as caught:
        setup.connect(
            actor=None,
            connector=setup.connector_for(channel=channel, kind="whatsapp"),
            secrets={"access_token": "x"},
            config={},
        )
    assert set(caught.value.message_dict) == {"app_secret", "phone_number_id"}
    assert not Connector.objects.filter(kind="whatsapp").exists() and not platform.requests


def test_update_keeps_empty_fields_and_disconnect_forgets_everything(
    db, channel, platform, administrator
):
    connector = connect_messenger(channel, "whatsapp", base=BASE)
    updated = setup.update_secrets(
        actor=administrator,
        connector=connector,
        secrets={"access_token": "", "app_secret": "a-new-app-secret-0001", "verify_token": ""},
        config={"phone_number_id": CONFIG["whatsapp"]["phone_number_id"]},
        base=BASE,
    )
    stored = vault.decrypt_json(updated.secrets)
    assert stored["access_token"] == SECRETS["whatsapp"]["access_token"]
    assert stored["app_secret"] == "a-new-app-secret-0001"
    assert stored["verify_token"] == SECRETS["whatsapp"]["verify_token"]
    gone = setup.disconnect(actor=administrator, connector=updated)
    assert gone.state == "not_connected" and gone.secrets == "" and gone.webhook_token is None


# ----- the page ------------------------------------------------------------------------


def test_the_page_connects_and_never_shows_a_secret_in_full(admin_client, channel, platform):
    url = page_url(channel, "telegram")
    page = admin_client.get(url).content.decode()
    assert "Not connected" in page and 'type="password"' in page
    response = admin_client.post(url, {"bot_token": TELEGRAM_TOKEN, "mode": "webhook"})
    assert response.status_code == 302
    connector = Connector.objects.get(channel=channel, kind="telegram")
    assert connector.state == "connected"
    stored = vault.decrypt_json(connector.secrets)
    page = admin_client.get(url).content.decode()
    assert TELEGRAM_TOKEN not in page and stored["secret_token"] not in page
    assert TELEGRAM_TOKEN.split(":")[1] not in page
    assert f"saved ••••{TELEGRAM_TOKEN[-4:]}" in page
    assert f"http://testserver/hooks/telegram/{connector.webhook_token}/" in page
    assert "Connected" in page and "@cc_support_test_bot" in page
    # An empty field keeps the stored token; the platform is asked again.
    assert admin_client.post(url, {"bot_token": "", "mode": "webhook"}).status_code == 302
    assert len(platform.calls(r"/bot[^/]+/setWebhook")) == 2
    connector.refresh_from_db()
    assert vault.decrypt_json(connector.secrets)["bot_token"] == TELEGRAM_TOKEN
    tab = admin_client.get(f"/console/contact-center/open-channels/{channel.pk}/connectors/")
    link = f'href="/console/contact-center/{channel.pk}/connectors/telegram/"'
    assert link in tab.content.decode()


def test_the_meta_page_shows_the_verify_token_but_no_other_secret(admin_client, channel, platform):
    connector = connect_messenger(channel, "facebook", base=BASE)
    page = admin_client.get(page_url(channel, "facebook")).content.decode()
    assert "Waiting for the platform" in page
    assert SECRETS["facebook"]["verify_token"] in page
    assert SECRETS["facebook"]["page_access_token"] not in page
    assert SECRETS["facebook"]["app_secret"] not in page
    assert f"{BASE}/hooks/facebook/{connector.webhook_token}/" not in page  # request's base
    assert f"/hooks/facebook/{connector.webhook_token}/" in page


def test_a_form_error_is_shown_and_nothing_is_called(admin_client, channel, platform):
    response = admin_client.post(page_url(channel, "whatsapp"), {"access_token": "x"})
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    assert not platform.requests


def test_disconnect_from_the_page(admin_client, channel, platform):
    connect_messenger(channel, "telegram", base=BASE)
    url = f"/console/contact-center/{channel.pk}/connectors/telegram/disconnect/"
    assert admin_client.get(url).status_code == 405
    assert admin_client.post(url).status_code == 302
    connector = Connector.objects.get(channel=channel, kind="telegram")
    assert connector.state == "not_connected" and not connector.secrets
    assert platform.calls(r"/bot[^/]+/deleteWebhook")


def test_operators_and_auditors_cannot_see_or_change_credentials(
    operator_client, auditor_client, channel, platform
):
    for client in (operator_client, auditor_client):
        assert client.get(page_url(channel, "telegram")).status_code == 403
        assert client.post(page_url(channel, "telegram"), {"bot_token": "1:x"}).status_code == 403
    assert not platform.requests


def test_live_chat_and_unknown_kinds_have_no_credentials_page(admin_client, channel):
    assert admin_client.get(page_url(channel, "livechat")).status_code == 404
    assert admin_client.get(page_url(channel, "icq")).status_code == 404


# ----- secrets never logged --------------------------------------------------------------


def test_secrets_are_never_logged_while_connecting_and_receiving(
    db, channel, platform, caplog, administrator
):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="openline")
    connectors = {kind: connect_messenger(channel, kind, base=BASE) for kind in SECRETS}
    platform.route(
        "POST",
        r"/bot[^/]+/getMe",
        Answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
    )
    connect_messenger(channel, "telegram", base=BASE)
    telegram = Connector.objects.get(pk=connectors["telegram"].pk)
    stored = vault.decrypt_json(telegram.secrets)
    Client().post(
        f"/hooks/telegram/{telegram.webhook_token}/",
        data=b'{"update_id": 1, "message": {"message_id": 1}}',
        content_type="application/json",
        headers={"X-Telegram-Bot-Api-Secret-Token": "forged"},
    )
    Client().post(
        f"/hooks/telegram/{telegram.webhook_token}/",
        data=b'{"update_id": 2}',
        content_type="application/json",
        headers={"X-Telegram-Bot-Api-Secret-Token": stored["secret_token"]},
    )
    setup.disconnect(actor=administrator, connector=Connector.objects.get(kind="viber"))
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "connector telegram" in logged  # the audit lines are there, without values
    values = [v for kind in SECRETS for v in SECRETS[kind].values()] + [stored["secret_token"]]
    leaked = [v for v in values if v in logged]
    assert leaked == []


def test_new_meta_credentials_behind_the_same_verify_token_stay_connected(
    db, channel, platform, administrator
):
    connector = connect_messenger(channel, "whatsapp", base=BASE)
    verify = {"hub.mode": "subscribe", "hub.challenge": "7"}
    verify["hub.verify_token"] = SECRETS["whatsapp"]["verify_token"]
    assert Client().get(f"/hooks/whatsapp/{connector.webhook_token}/", verify).status_code == 200
    connector.refresh_from_db()
    assert connector.state == "connected"
    # A new access token: Meta's confirmation of the URL and verify token still holds.
    again = setup.update_secrets(
        actor=administrator,
        connector=connector,
        secrets={"access_token": "a-rotated-access-token-0002"},
        base=BASE,
    )
    assert again.state == "connected" and again.webhook_token == connector.webhook_token
    # A new verify token must be verified by Meta again.
    changed = setup.update_secrets(
        actor=administrator,
        connector=again,
        secrets={"verify_token": "a-new-verify-token-0003"},
        base=BASE,
    )
    assert changed.state == "pending" and changed.connected_at is None


def test_no_service_switches_a_messenger_on_without_credentials(db, channel, administrator):
    from django.core.exceptions import ValidationError

    from openline.openchannels.services import set_connector

    with pytest.raises(ValidationError):
        set_connector(actor=administrator, channel=channel, kind="telegram", is_enabled=True)
    assert not Connector.objects.filter(kind="telegram").exists()


def test_a_new_meta_app_secret_waits_for_the_platform_again(db, channel, platform, administrator):
    connector = connect_messenger(channel, "facebook", base=BASE)
    verify = {"hub.mode": "subscribe", "hub.challenge": "7"}
    verify["hub.verify_token"] = SECRETS["facebook"]["verify_token"]
    assert Client().get(f"/hooks/facebook/{connector.webhook_token}/", verify).status_code == 200
    # The handshake proves the verify token only; a new app secret is unproven until Meta
    # calls again (handshake) or signs an event with it.
    changed = setup.update_secrets(
        actor=administrator,
        connector=Connector.objects.get(pk=connector.pk),
        secrets={"app_secret": "a-new-app-secret-0004"},
        base=BASE,
    )
    assert changed.state == "pending" and changed.connected_at is None


def test_switching_to_another_telegram_bot_starts_polling_from_the_beginning(
    db, channel, platform, administrator
):
    connector = connect_messenger(channel, "telegram", base=BASE, mode="polling")
    Connector.objects.filter(pk=connector.pk).update(
        poll_offset=900001, poller_owner="old-poller", poller_lease_until=timezone.now()
    )
    # The same bot again: its offset stays (resetting would refetch confirmed updates).
    same = setup.update_secrets(actor=administrator, connector=connector, secrets={}, base=BASE)
    assert same.poll_offset == 900001 and same.poller_owner == "old-poller"
    other_bot = fixture("telegram_get_me_response.json")
    other_bot["result"] = {**other_bot["result"], "id": 555000777, "username": "other_bot"}
    platform.route("POST", r"/bot[^/]+/getMe", other_bot)
    switched = setup.update_secrets(
        actor=administrator,
        connector=same,
        secrets={"bot_token": "555000777:AAAnotherFakeTokenForTests0123456"},
        base=BASE,
    )
    assert switched.config["bot_id"] == 555000777
    # The other bot's update ids start anywhere: the old offset would skip or wait past them,
    # and the old bot's poller must not write its offset back.
    assert switched.poll_offset == 0
    assert switched.poller_owner == "" and switched.poller_lease_until is None
