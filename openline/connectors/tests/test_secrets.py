"""Messenger credentials at rest: encrypted in the column, rotatable, one key per deployment."""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import stat

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from openline.connectors.tests.helpers import SECRETS, TELEGRAM_TOKEN, answer_platform_apis
from openline.connectors.tests.helpers import connect as connect_messenger
from openline.core import secrets
from openline.openchannels.models import Connector


@pytest.fixture(autouse=True)
def own_key_file(settings, tmp_path):
    """Each test gets its own key file (and no environment keys)."""
    settings.OPENLINE_SECRETS_KEYS = ""
    settings.OPENLINE_SECRETS_KEY_FILE = str(tmp_path / "secrets" / "fernet.keys")
    secrets.forget_cached_keys()
    yield tmp_path / "secrets" / "fernet.keys"
    secrets.forget_cached_keys()


def raw_secrets_column(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM openchannels_connector WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def test_round_trip_and_the_key_file_is_private(own_key_file):
    token = secrets.encrypt_json({"bot_token": TELEGRAM_TOKEN})
    assert TELEGRAM_TOKEN not in token
    assert secrets.decrypt_json(token) == {"bot_token": TELEGRAM_TOKEN}
    assert secrets.decrypt_json("") == {}
    assert stat.S_IMODE(os.stat(own_key_file).st_mode) == 0o600
    assert len(secrets.current_keys()) == 1


def test_a_wrong_key_is_a_clear_error_without_the_token(settings):
    token = secrets.encrypt_json({"auth_token": "viber-secret-value"})
    settings.OPENLINE_SECRETS_KEYS = Fernet.generate_key().decode()
    with pytest.raises(secrets.SecretsError) as caught:
        secrets.decrypt_json(token)
    message = str(caught.value)
    assert "cannot be decrypted" in message and token not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_credentials_are_encrypted_in_the_database_column(
    db, channel, administrator, fake_platform
):
    answer_platform_apis(fake_platform)
    connector = connect_messenger(channel, "telegram", base="https://openline.example")
    raw = raw_secrets_column(connector.pk)
    assert raw and TELEGRAM_TOKEN not in raw and "bot_token" not in raw
    assert secrets.decrypt_json(raw)["bot_token"] == TELEGRAM_TOKEN
    # Nothing else on the row holds a secret either.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM openchannels_connector WHERE id = %s", [connector.pk])
        row = " ".join(str(value) for value in cursor.fetchone())
    stored = secrets.decrypt_json(raw)
    for value in (TELEGRAM_TOKEN, stored["secret_token"]):
        assert value not in row.replace(raw, "")


def test_rotation_in_file_mode_keeps_every_token_readable(
    db, channel, administrator, fake_platform, own_key_file
):
    answer_platform_apis(fake_platform)
    connector = connect_messenger(channel, "viber", base="https://openline.example")
    before = raw_secrets_column(connector.pk)
    plain = secrets.decrypt_json(before)
    old_key = secrets.current_keys()[0]
    out = io.StringIO()
    call_command("secrets_rotate", stdout=out)
    assert "Re-encrypted the credentials of 1 connector(s)" in out.getvalue()
    keys = secrets.current_keys()
    assert len(keys) == 2 and keys[1] == old_key and keys[0] != old_key
    after = raw_secrets_column(connector.pk)
    assert after != before
    # Made with the new key: readable with it alone.
    assert Fernet(keys[0]).decrypt(after.encode())
    assert secrets.decrypt_json(after) == secrets.decrypt_json(before)
    assert secrets.decrypt_json(after)["auth_token"] == SECRETS["viber"]["auth_token"]
    call_command("secrets_rotate", "--drop-old-keys", stdout=io.StringIO())
    assert len(secrets.current_keys()) == 1
    assert secrets.decrypt_json(raw_secrets_column(connector.pk)) == plain
    # The dropped key made the old token: it is unreadable now, which is the point.
    with pytest.raises(secrets.SecretsError):
        secrets.decrypt_json(before)
    assert stat.S_IMODE(os.stat(own_key_file).st_mode) == 0o600


def test_rotation_in_environment_mode_uses_the_first_key(
    db, channel, administrator, fake_platform, settings
):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.OPENLINE_SECRETS_KEYS = old
    answer_platform_apis(fake_platform)
    connector = connect_messenger(channel, "telegram", base="https://openline.example")
    settings.OPENLINE_SECRETS_KEYS = f"{new}, {old}"
    call_command("secrets_rotate", stdout=io.StringIO())
    settings.OPENLINE_SECRETS_KEYS = new  # the old key is gone from the environment
    connector.refresh_from_db()
    assert secrets.decrypt_json(connector.secrets)["bot_token"] == TELEGRAM_TOKEN


def test_production_without_keys_fails_loudly_at_use(settings):
    settings.CONFIG = dataclasses.replace(settings.CONFIG, env="production")
    with pytest.raises(ImproperlyConfigured, match="OPENLINE_SECRETS_KEYS"):
        secrets.encrypt_json({"a": "b"})
    settings.OPENLINE_SECRETS_KEYS = Fernet.generate_key().decode()
    assert secrets.decrypt_json(secrets.encrypt_json({"a": "b"})) == {"a": "b"}


def _first_key(barrier, results) -> None:
    secrets.forget_cached_keys()
    barrier.wait()
    results.put(secrets.current_keys()[0].decode())


def test_the_key_file_is_created_once_when_processes_start_together(own_key_file):
    context = multiprocessing.get_context("fork")
    workers = 8
    barrier = context.Barrier(workers)
    results = context.Queue()
    processes = [
        context.Process(target=_first_key, args=(barrier, results)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    keys = {results.get(timeout=30) for _ in processes}
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(keys) == 1
    assert own_key_file.read_text().split() == [keys.pop()]
    assert not [p for p in own_key_file.parent.iterdir() if p.name != own_key_file.name]


def test_secrets_rotate_is_reported_without_secret_values(db, capsys):
    connector_count = Connector.objects.exclude(secrets="").count()
    out = io.StringIO()
    call_command("secrets_rotate", stdout=out)
    assert f"{connector_count} connector(s)" in out.getvalue()
    assert all(key.decode() not in out.getvalue() for key in secrets.current_keys())
