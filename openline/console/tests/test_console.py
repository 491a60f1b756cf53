"""The console app: its pages keep their URL names and paths, the demo data command, the API ids."""

from __future__ import annotations

import json
import stat

import pytest
from django.core.management import call_command
from django.urls import resolve, reverse

from openline.accounts.models import Role, User
from openline.openchannels.models import OpenChannel

# Names the templates, tests and bookmarks use; the pages moved, the names and paths did not.
MOVED = {
    "core:home": ("/console/", "openline.console.views"),
    "consent:records": ("/console/obtained-consents/", "openline.console.record_views"),
    "consent:records_export": (
        "/console/obtained-consents/export/",
        "openline.console.record_views",
    ),
    "consent:audit": ("/console/consents/history/", "openline.console.consent_views"),
    "consent:agreement_create": ("/console/consents/new/", "openline.console.consent_views"),
}


@pytest.mark.parametrize("name", sorted(MOVED))
def test_moved_pages_keep_their_url_names_and_paths(name):
    path, module = MOVED[name]
    assert reverse(name) == path
    assert resolve(path).func.__module__ == module


def test_the_registry_pages_share_the_consent_namespace_with_the_moved_ones():
    assert reverse("consent:agreements") == "/console/consents/"
    assert reverse("consent:registry") == "/console/registry/"
    assert reverse("consent:version_detail", args=[3, 2]) == "/console/consents/3/versions/2/"


def test_home_sends_each_role_to_its_work(admin_client, auditor_client, operator_client):
    assert admin_client.get("/console/").url == reverse("conversations:inbox")
    assert operator_client.get("/console/").url == reverse("conversations:inbox")
    assert auditor_client.get("/console/").url == reverse("consent:records")


def test_channel_filter_of_obtained_consents_lists_the_open_channels(auditor_client, channel):
    page = auditor_client.get("/console/obtained-consents/").content.decode()
    assert f'<option value="{channel.pk}">Website</option>' in page
    missing = auditor_client.get("/console/obtained-consents/?channel=999999").content.decode()
    assert "Unknown Open Channel" in missing


def test_load_demo_creates_staff_a_consent_and_a_channel_once(db, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    call_command("load_demo")
    logins = tmp_path / "demo-logins.json"
    first = json.loads(logins.read_text())
    call_command("load_demo")
    # The logins file holds passwords: only its owner may read it; a second run keeps them.
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600
    assert json.loads(logins.read_text()) == first
    roles = dict(User.objects.values_list("username", "role"))
    assert roles == {
        "admin": Role.ADMINISTRATOR,
        "operator": Role.OPERATOR,
        "auditor": Role.AUDITOR,
    }
    channel = OpenChannel.objects.get()
    assert channel.agreement is not None and channel.agreement.name == "Website chat privacy notice"


def test_consent_api_keeps_the_operation_ids_it_was_published_with():
    from openline.api.api import api

    schema = api.get_openapi_schema()
    ids = {
        (method, path): operation["operationId"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if path.startswith("/api/v1/consents/")
    }
    assert ids == {
        ("get", "/api/v1/consents/records"): "openline_consent_api_list_records",
        ("post", "/api/v1/consents/records"): "openline_consent_api_create_record",
        ("get", "/api/v1/consents/records/{record_id}"): "openline_consent_api_get_record",
        ("get", "/api/v1/consents/records/{record_id}/receipt"): "openline_consent_api_get_receipt",
        ("post", "/api/v1/consents/withdrawals"): "openline_consent_api_withdraw",
        ("post", "/api/v1/consents/verify"): "openline_consent_api_start_verification",
        ("get", "/api/v1/consents/verify/{run_id}"): "openline_consent_api_get_verification",
        ("get", "/api/v1/consents/checkpoints"): "openline_consent_api_list_checkpoints",
        ("get", "/api/v1/consents/checkpoints/{batch}"): "openline_consent_api_get_checkpoint",
    }
