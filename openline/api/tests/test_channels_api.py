"""Open Channels over the API: who reads and writes what, the services reached, no secrets."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from openline.connectors.tests.helpers import SECRETS, answer_platform_apis
from openline.core import secrets as vault
from openline.openchannels.models import Connector, OpenChannel
from openline.testing.fake_platforms import FakePlatform

URL = "/api/v1/open-channels"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _json(client: Client, method: str, url: str, body) -> object:
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")


def test_administrators_list_every_channel_operators_only_theirs(
    admin_client, operator_client, auditor_client, other_operator, channel, administrator
):
    from openline.openchannels.services import create_open_channel

    shop = create_open_channel(actor=administrator, name="Shop", operators=[other_operator])
    ids = [c["id"] for c in admin_client.get(URL).json()["items"]]
    assert ids == [channel.pk, shop.pk]
    assert [c["id"] for c in operator_client.get(URL).json()["items"]] == [channel.pk]
    assert [c["id"] for c in _client(other_operator).get(URL).json()["items"]] == [shop.pk]
    # Another channel's is as if it did not exist; auditors do not see channels at all.
    assert operator_client.get(f"{URL}/{shop.pk}").status_code == 404
    refused = auditor_client.get(URL)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert auditor_client.get(f"{URL}/{channel.pk}").status_code == 403
    assert Client().get(URL).status_code == 401


def test_a_channel_shows_consent_settings_appearance_and_connectors(operator_client, channel):
    body = operator_client.get(f"{URL}/{channel.pk}").json()
    assert body["name"] == "Website" and body["is_active"] is True
    assert body["consent"]["consent_enabled"] is True
    assert body["consent"]["consent_id"] == channel.agreement_id
    assert body["consent"]["withdraw_keywords"] == ["/stop", "withdraw consent"]
    assert body["appearance"]["color"] == "#2156d9"
    assert body["connectors"] == [
        {
            "kind": "livechat",
            "enabled": True,
            "state": "connected",
            "mode": "webhook",
            "connected_at": None,
            "last_event_at": None,
            "last_error": "",
        }
    ]
    # Operators read; only administrators change a channel.
    refused = _json(operator_client, "patch", f"{URL}/{channel.pk}", {"name": "Mine"})
    assert refused.status_code == 403
    assert _json(operator_client, "post", URL, {"name": "Mine"}).status_code == 403


def test_administrators_create_a_channel_with_live_chat_websites_and_consent(
    admin_client, operator, agreement
):
    created = _json(
        admin_client,
        "post",
        URL,
        {
            "name": "Shop",
            "operator_ids": [operator.pk],
            "crm_item_kind": "contact",
            "consent_enabled": True,
            "consent_id": agreement.pk,
            "allowed_websites": ["https://Shop.Example.com/", "http://localhost:8080"],
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    channel = OpenChannel.objects.get(pk=body["id"])
    assert channel.name == "Shop" and channel.crm_item_kind == "contact"
    assert list(channel.operators.all()) == [operator]
    assert channel.consent_enabled and channel.agreement == agreement
    live = Connector.objects.get(channel=channel, kind="livechat")
    assert live.is_enabled
    assert live.config["allowed_origins"] == ["https://shop.example.com", "http://localhost:8080"]
    assert body["allowed_websites"] == live.config["allowed_origins"]


def test_validation_errors_name_the_field(admin_client, channel, agreement):
    cases = [
        ("post", URL, {"name": "Shop", "consent_enabled": True}, "agreement"),
        ("post", URL, {"name": "Shop", "operator_ids": [987654]}, "operator_ids"),
        (
            "post",
            URL,
            {"name": "Shop", "allowed_websites": ["ftp://x.example"]},
            "allowed_websites",
        ),
        ("post", URL, {"name": ""}, "name"),
        ("patch", f"{URL}/{channel.pk}", {"appearance": {"color": "red"}}, "appearance.color"),
        (
            "patch",
            f"{URL}/{channel.pk}",
            {"consent": {"withdraw_keywords": []}},
            "consent.withdraw_keywords",
        ),
        (
            "patch",
            f"{URL}/{channel.pk}",
            {"appearance": {"hours_timezone": "Mars/Olympus"}},
            "appearance.hours_timezone",
        ),
        ("patch", f"{URL}/{channel.pk}", {"consent": {"consent_id": 987654}}, "consent.consent_id"),
        (
            "patch",
            f"{URL}/{channel.pk}",
            {"appearance": {"working_hours": [[["09:00"]]] * 7}},
            "appearance.working_hours",
        ),
        (
            "patch",
            f"{URL}/{channel.pk}",
            {"appearance": {"working_hours": [[["09:00", "12:00"], ["11:00", "13:00"]]] * 7}},
            "appearance.working_hours",
        ),
    ]
    for method, url, body, field in cases:
        response = _json(admin_client, method, url, body)
        assert response.status_code == 422, (body, response.content)
        assert response.json()["code"] == "invalid"
        assert field in response.json()["detail"], (field, response.json())
    channel.refresh_from_db()
    assert channel.name == "Website" and channel.withdraw_keywords == "/stop\nwithdraw consent"


def test_update_goes_through_the_services(admin_client, channel, other_operator):
    url = f"{URL}/{channel.pk}"
    changed = _json(
        admin_client,
        "patch",
        url,
        {
            "name": "Web shop",
            "operator_ids": [other_operator.pk],
            "consent": {
                "messenger_consent_mode": "buttons",
                "messenger_warning_text": "We keep your messages.",
                "withdraw_keywords": ["stop", "Stop ", "unsubscribe"],
                "unconfirmed_retention_days": 30,
            },
            "appearance": {
                "color": "#112233",
                "greeting": "Hi!",
                "launcher_position": "left",
                "hours_enabled": True,
                "hours_timezone": "Europe/Berlin",
                "working_hours": [[["9:00", "17:00"]]] * 5 + [[], []],
            },
            "allowed_websites": ["https://www.example.com"],
        },
    )
    assert changed.status_code == 200, changed.content
    channel.refresh_from_db()
    assert channel.name == "Web shop"
    assert list(channel.operators.all()) == [other_operator]
    assert channel.messenger_consent_mode == "buttons"
    # The service adds the link placeholder and tidies the keywords, as in the console.
    assert channel.messenger_warning_text == "We keep your messages. {link}"
    assert channel.withdraw_keywords == "stop\nStop\nunsubscribe"
    assert channel.unconfirmed_retention_days == 30
    assert (channel.color, channel.greeting, channel.launcher_position) == (
        "#112233",
        "Hi!",
        "left",
    )
    assert channel.hours_enabled and channel.hours_timezone == "Europe/Berlin"
    assert channel.working_hours[0] == [["09:00", "17:00"]] and channel.working_hours[6] == []
    assert changed.json()["allowed_websites"] == ["https://www.example.com"]
    # The consent-settings change is audited in the registry like a console change.
    from openline.consent.models import AuditEvent

    assert AuditEvent.objects.filter(after__messenger_consent_mode="buttons").exists()
    # Switching consent off and deactivating.
    off = _json(
        admin_client, "patch", url, {"is_active": False, "consent": {"consent_enabled": False}}
    )
    assert off.status_code == 200
    assert off.json()["is_active"] is False and off.json()["consent"]["consent_enabled"] is False


@pytest.fixture
def platform(settings, tmp_path):
    settings.OPENLINE_SECRETS_KEYS = ""
    settings.OPENLINE_SECRETS_KEY_FILE = str(tmp_path / "fernet.keys")
    vault.forget_cached_keys()
    fake = FakePlatform()
    settings.OPENLINE_TELEGRAM_API_URL = fake.base_url
    settings.OPENLINE_GRAPH_API_URL = fake.base_url + "/v21.0"
    settings.OPENLINE_VIBER_API_URL = fake.base_url
    answer_platform_apis(fake)
    yield fake
    fake.stop()
    vault.forget_cached_keys()


def test_messenger_credentials_are_write_only(admin_client, operator_client, channel, platform):
    token = SECRETS["telegram"]["bot_token"]
    url = f"{URL}/{channel.pk}/connectors/telegram"
    missing = _json(admin_client, "put", url, {"secrets": {}})
    assert missing.status_code == 422 and "secrets.bot_token" in missing.json()["detail"]
    assert _json(operator_client, "put", url, {"secrets": {"bot_token": token}}).status_code == 403
    connected = _json(admin_client, "put", url, {"secrets": {"bot_token": token}})
    assert connected.status_code == 200, connected.content
    assert connected.json()["state"] == "connected"
    stored = Connector.objects.get(channel=channel, kind="telegram")
    assert vault.decrypt_json(stored.secrets)["bot_token"] == token
    assert platform.calls(r"/bot[^/]+/getMe")
    # No answer carries a credential, the encrypted blob or the webhook's secret URL token.
    for response in (
        connected,
        admin_client.get(URL),
        admin_client.get(f"{URL}/{channel.pk}"),
        operator_client.get(f"{URL}/{channel.pk}"),
    ):
        text = response.content.decode()
        assert token not in text and stored.secrets not in text
        assert stored.webhook_token not in text
        assert "bot_token" not in text
    kinds = [c["kind"] for c in admin_client.get(f"{URL}/{channel.pk}").json()["connectors"]]
    assert kinds == ["livechat", "telegram"]
