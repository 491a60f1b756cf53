"""What the widget is told about a client's consent: required, in force, changed since agreed."""

from __future__ import annotations

import dataclasses
import json

import pytest
from django.conf import settings

from openline.consent.services import update_agreement
from openline.conversations.actions import close_conversation
from openline.livechat import flows
from openline.livechat.consumers import visitor_ready
from openline.livechat.tests.helpers import accepted_for, consented_visitor
from openline.openchannels.policy import consent_offer, offer_payload

pytestmark = pytest.mark.django_db


def new_version(administrator, channel, text="Version two: we keep transcripts for a year."):
    version = update_agreement(actor=administrator, agreement=channel.agreement, texts={"en": text})
    channel.agreement.refresh_from_db()
    return version


def ready_for(channel, visitor) -> dict:
    return visitor_ready(channel=channel, visitor=visitor, last_id=0, language="en")


def start(client, channel, body, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(
        f"/widget/{channel.code}/start",
        data=json.dumps(body),
        content_type="application/json",
        **headers,
    )


def test_offer_links_to_the_public_page_of_its_version(channel, monkeypatch):
    shown = consent_offer(channel, "en")
    code = shown.version.public_code
    assert offer_payload(shown)["url"] == f"/c/{code}/?lang=en"
    assert (
        offer_payload(shown, base_url="https://chat.example.com/")["url"]
        == f"https://chat.example.com/c/{code}/?lang=en"
    )
    monkeypatch.setattr(
        settings, "CONFIG", dataclasses.replace(settings.CONFIG, public_url="https://ol.example")
    )
    assert offer_payload(shown)["url"] == f"https://ol.example/c/{code}/?lang=en"


def test_a_consent_in_force_keeps_the_menu_after_a_new_version(channel, administrator):
    started, _ = consented_visitor(channel)
    ready = ready_for(channel, started.visitor)
    assert (ready["consent_required"], ready["has_consent"], ready["consent_changed"]) == (
        False,
        True,
        False,
    )
    new_version(administrator, channel)
    ready = ready_for(channel, started.visitor)
    # A new chat needs the new text; the consent given to the old one is still in force.
    assert ready["consent_required"] is True and ready["consent"]["number"] == 2
    assert ready["has_consent"] is True
    assert ready["consent_changed"] is True
    assert ready["hours"] == {
        "enabled": False,
        "open": True,
        "offline_message": ready["hours"]["offline_message"],
        "next_open": None,
    }


def test_withdrawn_consent_is_not_in_force(channel, administrator):
    started, _ = consented_visitor(channel)
    flows.withdraw_livechat_consent(
        channel=channel, visitor=started.visitor, page_url="", ip="", user_agent=""
    )
    status = flows.consent_status(channel, started.visitor)
    assert (status.required, status.in_force, status.changed) == (True, False, False)
    new_version(administrator, channel)
    status = flows.consent_status(channel, started.visitor)
    assert (status.required, status.in_force, status.changed) == (True, False, True)
    assert flows.consent_status(channel, None) == flows.ConsentStatus(
        required=True, in_force=False, changed=False
    )


def test_start_tells_a_returning_client_the_text_changed(client, channel, administrator):
    started, token = consented_visitor(channel)
    close_conversation(conversation=started.conversation, actor=None)
    new_version(administrator, channel)
    body = {"text": "Back again", "client_id": "c2", "page_url": "https://shop.example/"}
    response = start(client, channel, body, token)
    assert response.status_code == 409
    assert response.json()["consent_changed"] is True
    code = channel.agreement.current_version.public_code
    assert response.json()["consent"]["url"] == f"http://testserver/c/{code}/?lang=en"
    # A new client is never told the text changed.
    response = start(client, channel, body)
    assert response.status_code == 409 and response.json()["consent_changed"] is False
    # Accepting the new text starts the chat.
    body["consent"] = dataclasses.asdict(accepted_for(channel))
    body["consent"]["version"] = body["consent"].pop("version_id")
    response = start(client, channel, body, token)
    assert response.status_code == 201, response.content


def test_the_receipt_still_answers_for_the_older_version(client, channel, administrator):
    started, token = consented_visitor(channel)
    new_version(administrator, channel)
    response = client.get(f"/widget/{channel.code}/receipt", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert str(started.record.uuid) in response.content.decode()


def test_every_widget_text_has_a_german_translation(client, channel):
    from django.utils import translation

    from openline.livechat.strings import widget_strings

    english = widget_strings()
    with translation.override("de"):
        german = widget_strings()
    same = {key for key in english if english[key] == german[key]}
    assert same <= {"sample_name"}, same
    frame = client.get(f"/widget/{channel.code}/frame", HTTP_ACCEPT_LANGUAGE="de")
    for text in ("Den vollständigen Text lesen", "Einwilligung widerrufen?", "Abbrechen"):
        assert text in frame.text


def test_the_widgets_offline_wording_is_the_channels_default_translated():
    """hours_state leaves the unchanged default to the widget, which says it in German too."""
    from django.utils import translation

    from openline.livechat.strings import widget_strings
    from openline.openchannels.models import DEFAULT_OFFLINE_MESSAGE

    assert widget_strings()["closed_now"] == DEFAULT_OFFLINE_MESSAGE
    with translation.override("de"):
        assert widget_strings()["closed_now"].startswith("Wir sind gerade nicht erreichbar")
