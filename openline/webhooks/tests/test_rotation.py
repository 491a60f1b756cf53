"""``manage.py secrets_rotate`` re-encrypts webhook signing secrets with the connectors'."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from openline.core import secrets
from openline.webhooks import services, signing
from openline.webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_key_file(settings, tmp_path):
    settings.OPENLINE_SECRETS_KEYS = ""
    settings.OPENLINE_SECRETS_KEY_FILE = str(tmp_path / "fernet.keys")
    secrets.forget_cached_keys()
    yield
    secrets.forget_cached_keys()


def test_rotating_the_keys_keeps_every_endpoint_secret_readable(own_key_file, administrator):
    endpoint, secret = services.create_endpoint(
        actor=administrator, url="https://hooks.example/in", events=["consent.given"]
    )
    before = WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted
    out = io.StringIO()
    call_command("secrets_rotate", stdout=out)
    assert "1 webhook endpoint secret(s)" in out.getvalue()
    call_command("secrets_rotate", "--drop-old-keys", stdout=io.StringIO())
    after = WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted
    assert after != before and secret not in after
    assert signing.unseal(after) == secret
    # The dropped keys made the first token: unreadable now, which is the point.
    with pytest.raises(secrets.SecretsError):
        signing.unseal(before)
