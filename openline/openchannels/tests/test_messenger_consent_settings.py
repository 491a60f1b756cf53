"""The Consents tab sets how messenger clients consent on an Open Channel, audited."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from openline.consent.models import AuditAction, AuditEvent
from openline.openchannels import policy, services
from openline.openchannels.models import MessengerConsentMode


def url(channel) -> str:
    return f"/console/contact-center/open-channels/{channel.pk}/consents/"


def post_data(channel, **changes) -> dict:
    data = {
        "consent_enabled": "on",
        "agreement": channel.agreement_id,
        "messenger_consent_mode": "warning",
        "messenger_warning_text": "",
        "withdraw_keywords": "/stop\nwithdraw consent",
        "unconfirmed_retention_days": "",
    }
    data.update(changes)
    return data


def test_the_tab_shows_the_settings_with_help_and_a_warning_preview(admin_client, channel):
    page = admin_client.get(url(channel)).content.decode()

    assert "How messenger clients consent" in page
    assert "Warning, then confirmation by continued conversation" in page
    assert "Explicit consent with buttons" in page
    assert "writing again confirms consent" in page
    assert "Withdrawal keywords" in page and "Delete unconfirmed clients after (days)" in page
    version = channel.agreement.current_version
    # The preview is the built-in wording with the link to exactly the current version.
    assert "By continuing to use this chat, you consent" in page
    assert f"/consent/{version.public_code}/" in page or version.public_code in page


def test_saving_changes_every_messenger_setting_and_audits_it(admin_client, channel):
    response = admin_client.post(
        url(channel),
        post_data(
            channel,
            messenger_consent_mode="buttons",
            messenger_warning_text="We store your data, see",
            withdraw_keywords="stop\n  STOP  \nforget me\n\n",
            unconfirmed_retention_days="14",
        ),
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.messenger_consent_mode == MessengerConsentMode.BUTTONS
    # The link is always sent: a text without {link} gets it at the end.
    assert channel.messenger_warning_text == "We store your data, see {link}"
    assert policy.warning_text(channel, "de", "https://x/v/1") == (
        "We store your data, see https://x/v/1"
    )
    assert channel.withdraw_keywords == "stop\nSTOP\nforget me"
    assert channel.unconfirmed_retention_days == 14
    event = AuditEvent.objects.filter(
        action=AuditAction.CHANNEL_CONSENT_SETTINGS, channel=channel
    ).latest("created_at")
    assert event.before["messenger_consent_mode"] == "warning"
    assert event.after["messenger_consent_mode"] == "buttons"
    assert event.after["unconfirmed_retention_days"] == 14
    assert event.after["withdraw_keywords"] == ["stop", "STOP", "forget me"]


def test_the_evidence_snapshot_carries_the_messenger_settings(channel, administrator):
    # Every consent record stores this snapshot (consent/tests/test_records.py checks that).
    channel = services.update_consent_settings(
        actor=administrator,
        channel=channel,
        consent_enabled=True,
        agreement=channel.agreement,
        unconfirmed_retention_days=30,
    )
    snapshot = services.consent_settings(channel)
    assert snapshot["unconfirmed_retention_days"] == 30
    assert snapshot["messenger_consent_mode"] == "warning"
    assert snapshot["messenger_warning_text"] == ""
    assert snapshot["withdraw_keywords"] == ["/stop", "withdraw consent"]


def test_clearing_retention_turns_it_off_and_leaving_fields_out_keeps_them(
    admin_client, channel, administrator
):
    services.update_consent_settings(
        actor=administrator,
        channel=channel,
        consent_enabled=True,
        agreement=channel.agreement,
        unconfirmed_retention_days=5,
    )
    # A request without the messenger fields (an older form) leaves them as they are.
    admin_client.post(url(channel), {"consent_enabled": "on", "agreement": channel.agreement_id})
    channel.refresh_from_db()
    assert channel.unconfirmed_retention_days == 5

    admin_client.post(url(channel), post_data(channel, unconfirmed_retention_days=""))
    channel.refresh_from_db()
    assert channel.unconfirmed_retention_days is None


@pytest.mark.parametrize("days", ["0", "-3", "99999", "two"])
def test_invalid_retention_is_a_field_error(admin_client, channel, days):
    response = admin_client.post(url(channel), post_data(channel, unconfirmed_retention_days=days))
    assert response.status_code == 200
    channel.refresh_from_db()
    assert channel.unconfirmed_retention_days is None


def test_withdrawal_keywords_cannot_all_be_removed(admin_client, channel, administrator):
    response = admin_client.post(url(channel), post_data(channel, withdraw_keywords="  \n "))
    assert response.status_code == 200
    assert "withdrawing consent must be as easy as giving it" in response.content.decode()
    with pytest.raises(ValidationError):
        services.update_consent_settings(
            actor=administrator,
            channel=channel,
            consent_enabled=True,
            agreement=channel.agreement,
            withdraw_keywords="",
        )


def test_operators_and_auditors_cannot_change_the_settings(
    operator_client, auditor_client, channel
):
    for client in (operator_client, auditor_client):
        response = client.post(url(channel), post_data(channel, unconfirmed_retention_days="1"))
        assert response.status_code == 403
    channel.refresh_from_db()
    assert channel.unconfirmed_retention_days is None


def test_client_text_in_the_warning_is_escaped(admin_client, channel):
    admin_client.post(
        url(channel), post_data(channel, messenger_warning_text="<b>Data</b> policy: {link}")
    )
    page = admin_client.get(url(channel)).content.decode()
    assert "<b>Data</b>" not in page and "&lt;b&gt;Data&lt;/b&gt;" in page
