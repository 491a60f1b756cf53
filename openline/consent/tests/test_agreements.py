"""Consents: versions, languages, sanitising, public pages, deactivation, audit history."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from openline.consent import services
from openline.consent.models import AgreementVersion, AppendOnlyError, AuditAction, AuditEvent

XSS = (
    '<p>Hello <script>alert("x")</script><img src=x onerror="alert(1)">'
    '<a href="javascript:alert(2)">click</a> <a href="https://example.com/privacy">policy</a></p>'
)


def test_changing_the_text_makes_a_new_version_and_keeps_the_old(administrator, agreement):
    v1 = agreement.current_version
    v2 = services.update_agreement(
        actor=administrator, agreement=agreement, texts={"en": "New wording."}
    )
    assert (v1.number, v2.number) == (1, 2)
    assert v1.texts.get().text.startswith("We process your name")
    assert v2.texts.get().text == "New wording."
    assert agreement.current_version == v2
    assert v1.public_code != v2.public_code


def test_saving_without_changes_makes_no_version(administrator, agreement):
    text = agreement.current_version.texts.get().text
    result = services.update_agreement(
        actor=administrator,
        agreement=agreement,
        name="Renamed",
        texts={"en": text},
        allow_html=False,
    )
    assert result is None
    assert agreement.versions.count() == 1
    agreement.refresh_from_db()
    assert agreement.name == "Renamed"


def test_switching_html_on_makes_a_new_version(administrator, agreement):
    version = services.update_agreement(actor=administrator, agreement=agreement, allow_html=True)
    assert version is not None and version.allow_html


def test_versions_cannot_be_edited(agreement):
    version = agreement.current_version
    version.allow_html = True
    with pytest.raises(AppendOnlyError):
        version.save()
    text = version.texts.get()
    text.text = "sneaky"
    with pytest.raises(AppendOnlyError):
        text.save()


def test_html_is_sanitised_scripts_handlers_and_javascript_urls_removed(administrator):
    agreement = services.create_agreement(
        actor=administrator, name="HTML", text=XSS, allow_html=True
    )
    html = agreement.current_version.texts.get().rendered_html
    assert "<script" not in html and "alert(" not in html
    assert "onerror" not in html and "javascript:" not in html
    assert '<a href="https://example.com/privacy" rel="noopener noreferrer">policy</a>' in html


def test_plain_text_is_escaped_with_clickable_links(administrator):
    agreement = services.create_agreement(
        actor=administrator, name="Plain", text=XSS, allow_html=False
    )
    html = agreement.current_version.texts.get().rendered_html
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;" in html
    assert '<a href="javascript:' not in html and 'href="http://href' not in html


def test_translations_make_a_version_and_clients_see_their_language(administrator, agreement):
    version = services.update_agreement(
        actor=administrator, agreement=agreement, texts={"de": "Wir verarbeiten Ihre Daten."}
    )
    assert sorted(t.language for t in version.texts.all()) == ["de", "en"]
    assert services.text_for(version, "de-AT").language == "de"
    assert services.text_for(version, "fr").language == "en"  # falls back to the default
    assert services.text_for(version, None).language == "en"


def test_default_language_cannot_be_removed(administrator, agreement):
    with pytest.raises(ValidationError):
        services.update_agreement(
            actor=administrator, agreement=agreement, remove_languages=("en",)
        )


def test_public_page_shows_exactly_that_version_in_the_chosen_language(
    client, administrator, agreement
):
    v1 = agreement.current_version
    services.update_agreement(
        actor=administrator, agreement=agreement, texts={"en": "Second text", "de": "Zweiter"}
    )
    old = client.get(f"/c/{v1.public_code}/")
    assert (
        old.status_code == 200
        and b"We process your name" in old.content
        and b"Second text" not in old.content
    )
    v2 = agreement.current_version
    german = client.get(f"/c/{v2.public_code}/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9,en;q=0.5")
    assert b"Zweiter" in german.content and german["Content-Language"] == "de"
    forced = client.get(f"/c/{v2.public_code}/?lang=en", HTTP_ACCEPT_LANGUAGE="de")
    assert b"Second text" in forced.content
    assert client.get("/c/not-a-real-code/").status_code == 404


def test_public_page_never_renders_script(client, administrator):
    agreement = services.create_agreement(actor=administrator, name="X", text=XSS, allow_html=True)
    body = client.get(f"/c/{agreement.current_version.public_code}/").content.decode()
    assert "<script>alert" not in body and "onerror" not in body and "javascript:" not in body


def test_create_from_a_channel_selects_it_there(admin_client, channel):
    response = admin_client.post(
        f"/console/consents/new/?channel={channel.pk}",
        {"name": "Chat notice", "text": "We keep your chat.", "language": "en"},
    )
    assert response.status_code == 302
    assert response["Location"] == f"/console/contact-center/open-channels/{channel.pk}/consents/"
    channel.refresh_from_db()
    assert channel.agreement.name == "Chat notice" and channel.consent_enabled


def test_edit_page_saves_a_new_version_only_when_text_changes(admin_client, agreement):
    url = f"/console/consents/{agreement.pk}/"
    text = agreement.current_version.texts.get().text
    admin_client.post(url, {"name": agreement.name, "text": text})
    assert agreement.versions.count() == 1
    admin_client.post(url, {"name": agreement.name, "text": "Changed", "allow_html": "on"})
    assert agreement.versions.count() == 2
    versions = admin_client.get(f"/console/consents/{agreement.pk}/versions/")
    assert b"v2" in versions.content and b"v1" in versions.content


def test_diff_shows_removed_and_added_lines(admin_client, administrator, agreement):
    services.update_agreement(
        actor=administrator, agreement=agreement, texts={"en": "Brand new line"}
    )
    body = admin_client.get(f"/console/consents/{agreement.pk}/versions/2/diff/").content.decode()
    assert '<div class="add">Brand new line</div>' in body
    assert '<div class="del">We process your name' in body
    assert admin_client.get(f"/console/consents/{agreement.pk}/versions/9/").status_code == 404
    assert (
        admin_client.get(f"/console/consents/{agreement.pk}/versions/2/diff/?against=x").status_code
        == 404
    )
    assert admin_client.get("/console/consents/999999/").status_code == 404


def test_preview_endpoint_uses_the_server_sanitiser(admin_client, operator_client):
    response = admin_client.post("/console/consents/preview/", {"text": XSS, "allow_html": "on"})
    data = response.json()
    assert (
        "<script" not in data["html"]
        and "onerror" not in data["html"]
        and len(data["sha256"]) == 64
    )
    assert operator_client.post("/console/consents/preview/", {"text": "x"}).status_code == 403


def test_deactivate_never_deletes_and_is_refused_while_a_channel_uses_it(
    admin_client, administrator, agreement, channel
):
    with pytest.raises(ValidationError):
        services.set_agreement_active(actor=administrator, agreement=agreement, is_active=False)
    other = services.create_agreement(
        actor=administrator, name="Old", text="Old text", allow_html=False
    )
    admin_client.post(f"/console/consents/{other.pk}/active/", {"is_active": "0"})
    other.refresh_from_db()
    assert other.is_active is False
    assert AgreementVersion.objects.filter(agreement=other).exists()
    admin_client.post(f"/console/consents/{other.pk}/active/", {"is_active": "1"})
    other.refresh_from_db()
    assert other.is_active is True
    actions = list(AuditEvent.objects.filter(agreement=other).values_list("action", flat=True))
    assert (
        AuditAction.AGREEMENT_DEACTIVATED in actions
        and AuditAction.AGREEMENT_REACTIVATED in actions
    )


def test_audit_history_keeps_channel_settings_and_consent_changes(
    admin_client, auditor_client, operator_client, administrator, agreement, channel
):
    from openline.openchannels.services import update_consent_settings

    update_consent_settings(
        actor=administrator, channel=channel, consent_enabled=False, agreement=agreement
    )
    services.update_agreement(actor=administrator, agreement=agreement, texts={"en": "v2 text"})
    event = AuditEvent.objects.filter(
        action=AuditAction.CHANNEL_CONSENT_SETTINGS, channel=channel
    ).first()
    assert event.before["consent_enabled"] is True and event.after["consent_enabled"] is False
    assert event.actor == administrator
    version_event = AuditEvent.objects.get(action=AuditAction.AGREEMENT_VERSION)
    assert version_event.before["version"] == 1 and version_event.after["version"] == 2
    page = auditor_client.get("/console/consents/history/")
    assert page.status_code == 200 and b"Open Channel consent settings changed" in page.content
    assert operator_client.get("/console/consents/history/").status_code == 403
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().update(actor_label="x")
