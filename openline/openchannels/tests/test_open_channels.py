import pytest
from django.core.exceptions import ValidationError

from openline.openchannels import services
from openline.openchannels.models import Connector, OpenChannel


def test_contact_center_lists_every_connector(admin_client, channel):
    page = admin_client.get("/console/contact-center/").content.decode()
    for label in ["Live chat", "Telegram", "WhatsApp", "Facebook Messenger", "Viber"]:
        assert label in page
    assert "1 Open Channel" in page


def test_connector_page_lists_channels_with_configure(admin_client, channel):
    page = admin_client.get("/console/contact-center/connectors/livechat/").content.decode()
    assert "Website" in page and "Configure" in page and "Connected" in page


def test_unknown_connector_and_channel_are_404(admin_client, channel):
    assert admin_client.get("/console/contact-center/connectors/icq/").status_code == 404
    assert (
        admin_client.get("/console/contact-center/open-channels/999999/general/").status_code == 404
    )
    assert (
        admin_client.get(f"/console/contact-center/open-channels/{channel.pk}/nope/").status_code
        == 404
    )


def test_operator_sees_only_their_channels_and_cannot_configure(
    operator_client, other_operator, administrator, channel
):
    services.create_open_channel(
        actor=administrator, name="Hidden", operators=[other_operator], connectors=["livechat"]
    )
    page = operator_client.get("/console/contact-center/connectors/livechat/").content.decode()
    assert "Website" in page and "Hidden" not in page and "Configure" not in page
    assert (
        operator_client.get(
            f"/console/contact-center/open-channels/{channel.pk}/general/"
        ).status_code
        == 403
    )


def test_create_open_channel(admin_client, operator):
    response = admin_client.post(
        "/console/contact-center/open-channels/new/",
        {
            "name": "Support",
            "operators": [operator.pk],
            "connectors": ["livechat", "telegram"],
            "crm_item_kind": "contact",
        },
    )
    assert response.status_code == 302
    channel = OpenChannel.objects.get(name="Support")
    assert list(channel.operators.all()) == [operator]
    assert sorted(c.kind for c in channel.connectors.all()) == ["livechat", "telegram"]
    assert channel.consent_enabled is False and len(channel.code) >= 12


def test_invalid_create_rerenders_with_errors_and_saves_nothing(admin_client):
    response = admin_client.post(
        "/console/contact-center/open-channels/new/",
        {"name": "", "connectors": ["icq"], "crm_item_kind": "lead"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "This field is required." in body and "Select a valid choice" in body
    assert OpenChannel.objects.count() == 0 and Connector.objects.count() == 0


def test_consent_warning_without_consent_is_refused(admin_client, administrator):
    channel = services.create_open_channel(
        actor=administrator, name="Shop", connectors=["livechat"]
    )
    url = f"/console/contact-center/open-channels/{channel.pk}/consents/"
    response = admin_client.post(url, {"consent_enabled": "on", "agreement": ""})
    assert response.status_code == 200
    assert services.CONSENT_REQUIRED_MESSAGE in response.content.decode()
    channel.refresh_from_db()
    assert channel.consent_enabled is False


@pytest.mark.dbspecific  # row locking differs per database
def test_consent_warning_with_consent_is_saved(admin_client, administrator, agreement):
    channel = services.create_open_channel(
        actor=administrator, name="Shop", connectors=["livechat"]
    )
    url = f"/console/contact-center/open-channels/{channel.pk}/consents/"
    response = admin_client.post(url, {"consent_enabled": "on", "agreement": agreement.pk})
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.consent_enabled and channel.agreement == agreement
    page = admin_client.get(url).content.decode()
    assert "Obtained consents" in page and "Create new consent" in page


def test_service_refuses_warning_without_consent(administrator):
    with pytest.raises(ValidationError):
        services.create_open_channel(
            actor=administrator, name="X", consent_enabled=True, agreement=None
        )
    assert OpenChannel.objects.count() == 0


def test_unknown_consent_id_is_a_field_error(admin_client, channel):
    url = f"/console/contact-center/open-channels/{channel.pk}/consents/"
    response = admin_client.post(url, {"consent_enabled": "on", "agreement": "999999"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


def test_edit_and_deactivate(admin_client, channel, other_operator):
    url = f"/console/contact-center/open-channels/{channel.pk}/general/"
    response = admin_client.post(
        url, {"name": "Website EU", "operators": [other_operator.pk], "crm_item_kind": "contact"}
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Website EU" and list(channel.operators.all()) == [other_operator]
    response = admin_client.post(
        f"/console/contact-center/open-channels/{channel.pk}/active/", {"active": "0"}
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.is_active is False
    assert (
        admin_client.get(f"/console/contact-center/open-channels/{channel.pk}/active/").status_code
        == 405
    )


def test_connectors_tab_toggles_live_chat_but_never_a_messenger(admin_client, channel):
    url = f"/console/contact-center/open-channels/{channel.pk}/connectors/"
    assert admin_client.post(url, {"enabled": ["livechat", "viber"]}).status_code == 302
    kinds = {c.kind: c.is_enabled for c in channel.connectors.all()}
    # A messenger is connected with working credentials on its own page, not by a tick box.
    assert kinds == {"livechat": True}
    assert admin_client.post(url, {"enabled": ["viber"]}).status_code == 302
    kinds = {c.kind: c.is_enabled for c in channel.connectors.all()}
    assert kinds == {"livechat": False}
    page = admin_client.get(url).content.decode()
    assert 'value="viber"' not in page and "Not connected" in page


def test_demo_data_loads_once(db, settings, tmp_path, capsys):
    from django.core.management import call_command

    settings.VAR_DIR = tmp_path
    call_command("load_demo")
    call_command("load_demo")
    out = capsys.readouterr().out
    assert "Demo data loaded" in out and "Demo data already present" in out
    channel = OpenChannel.objects.get(name="Website")
    assert channel.consent_enabled and channel.agreement is not None
    assert channel.connector("livechat") is not None
    assert OpenChannel.objects.count() == 1
