"""The real settings module, loaded in a fresh interpreter, follows the environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'layer': s.CHANNEL_LAYERS['default']['BACKEND'], "
    "'cache': s.CACHES['default']['BACKEND'], 'debug': s.DEBUG}))"
)


def _run(env_overrides: dict, code: str = PROBE) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENLINE_", "DATABASE_URL", "REDIS_URL"))
    }
    env.update({"DJANGO_SETTINGS_MODULE": "openline.settings", **env_overrides})
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_embedded_default_is_sqlite_and_in_memory_layer(tmp_path):
    result = _run({"OPENLINE_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "engine": "django.db.backends.sqlite3",
        "layer": "channels.layers.InMemoryChannelLayer",
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "debug": True,
    }


def test_database_url_and_redis_url_switch_to_postgresql_and_redis(tmp_path):
    result = _run(
        {
            "OPENLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["engine"] == "django.db.backends.postgresql"
    # channels_redis' Pub/Sub layer with one subscription per process (core/channel_layer.py).
    assert loaded["layer"] == "openline.core.channel_layer.ProcessPubSubChannelLayer"
    # Django's Redis cache, made never to fail a request while Redis is down (core/cache.py).
    assert loaded["cache"] == "openline.core.cache.ResilientRedisCache"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "OPENLINE_SECRET_KEY is not set"),
        (
            {
                "OPENLINE_SECRET_KEY": "k" * 40,
                "OPENLINE_ALLOWED_HOSTS": "x.example",
                "OPENLINE_DEBUG": "1",
                "OPENLINE_PUBLIC_URL": "https://x.example",
            },
            "OPENLINE_DEBUG is on",
        ),
        (
            {"OPENLINE_SECRET_KEY": "k" * 40, "OPENLINE_PUBLIC_URL": "https://x.example"},
            "OPENLINE_ALLOWED_HOSTS is empty",
        ),
    ],
)
def test_production_mode_refuses_to_start_with_a_clear_message(tmp_path, env, message):
    result = _run(
        {"OPENLINE_ENV": "production", "OPENLINE_VAR_DIR": str(tmp_path), **env},
        code="import django; django.setup()",
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Openline refuses to start in production mode" in result.stderr


def test_readyz_with_the_redis_channel_layer(client, db, settings, redis_url):
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"readyz{os.getpid()}"},
        }
    }
    channel_layers.backends.clear()
    try:
        response = client.get("/readyz")
    finally:
        channel_layers.backends.clear()
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["channel_layer"] == "ok"


@pytest.mark.parametrize(
    ("kind", "backend"),
    [
        ("core", "channels_redis.core.RedisChannelLayer"),
        ("pubsub-plain", "channels_redis.pubsub.RedisPubSubChannelLayer"),
    ],
)
def test_openline_channel_layer_selects_another_redis_layer(tmp_path, kind, backend):
    result = _run(
        {
            "OPENLINE_VAR_DIR": str(tmp_path),
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "OPENLINE_CHANNEL_LAYER": kind,
        }
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["layer"] == backend
