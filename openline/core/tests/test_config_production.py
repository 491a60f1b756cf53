"""Production mode is HTTPS-only and refuses settings that would weaken it, with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openline.config import ConfigError, load_config
from openline.testing.keys import write_signing_key

ROOT = Path(__file__).resolve().parents[3]
PRODUCTION_OK = {
    "OPENLINE_ENV": "production",
    "OPENLINE_SECRET_KEY": "x" * 40,
    "OPENLINE_ALLOWED_HOSTS": "chat.example.com",
    "OPENLINE_PUBLIC_URL": "https://chat.example.com",
}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"OPENLINE_ALLOWED_HOSTS": "*"}, "OPENLINE_ALLOWED_HOSTS contains '*'"),
        ({"OPENLINE_ALLOWED_HOSTS": "chat.example.com, *"}, "OPENLINE_ALLOWED_HOSTS contains '*'"),
        ({"OPENLINE_PUBLIC_URL": "http://chat.example.com"}, "must start with https://"),
        ({"OPENLINE_SECURE_COOKIES": "0"}, "OPENLINE_SECURE_COOKIES is off"),
        ({"OPENLINE_SECURE_COOKIES": "false"}, "OPENLINE_SECURE_COOKIES is off"),
    ],
)
def test_production_refuses_weakened_settings(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message) as refused:
        load_config({**PRODUCTION_OK, **override, "OPENLINE_VAR_DIR": str(tmp_path)})
    text = str(refused.value)
    assert text.startswith("Openline refuses to start in production mode") and "\n" not in text


def test_development_still_allows_plain_http_and_any_host(tmp_path):
    config = load_config(
        {
            "OPENLINE_VAR_DIR": str(tmp_path),
            "OPENLINE_ALLOWED_HOSTS": "*",
            "OPENLINE_PUBLIC_URL": "http://localhost:8000",
            "OPENLINE_SECURE_COOKIES": "0",
        }
    )
    assert config.allowed_hosts == ["*"] and not config.secure_cookies
    assert config.hsts_seconds == 0


def test_production_sends_hsts_for_a_year_by_default(tmp_path):
    config = load_config({**PRODUCTION_OK, "OPENLINE_VAR_DIR": str(tmp_path)})
    assert config.hsts_seconds == 365 * 24 * 3600
    assert config.hsts_include_subdomains is False


def test_hsts_is_configurable(tmp_path):
    config = load_config(
        {
            **PRODUCTION_OK,
            "OPENLINE_VAR_DIR": str(tmp_path),
            "OPENLINE_HSTS_SECONDS": "600",
            "OPENLINE_HSTS_INCLUDE_SUBDOMAINS": "yes",
        }
    )
    assert (config.hsts_seconds, config.hsts_include_subdomains) == (600, True)
    with pytest.raises(ConfigError, match="OPENLINE_HSTS_SECONDS"):
        load_config(
            {**PRODUCTION_OK, "OPENLINE_VAR_DIR": str(tmp_path), "OPENLINE_HSTS_SECONDS": "-1"}
        )


PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'redirect': s.SECURE_SSL_REDIRECT, 'exempt': s.SECURE_REDIRECT_EXEMPT, "
    "'hsts': s.SECURE_HSTS_SECONDS, 'proxy_ssl_header': s.SECURE_PROXY_SSL_HEADER, "
    "'secure_cookies': s.SESSION_COOKIE_SECURE}))"
)


def _settings_in_a_fresh_process(tmp_path, env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINE_")}
    clean.update(
        {
            "DJANGO_SETTINGS_MODULE": "openline.settings",
            "OPENLINE_VAR_DIR": str(tmp_path),
            "OPENLINE_SIGNING_KEY_FILE": write_signing_key(tmp_path / "key.pem"),
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_redirect_to_https_and_never_trust_any_peer_for_the_scheme(tmp_path):
    result = _settings_in_a_fresh_process(tmp_path, PRODUCTION_OK)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == {
        "redirect": True,
        "exempt": ["^healthz$", "^readyz$"],
        "hsts": 365 * 24 * 3600,
        # The scheme comes from openline.core.proxy, which believes trusted proxies only.
        "proxy_ssl_header": None,
        "secure_cookies": True,
    }


def test_production_refusal_is_one_clear_line(tmp_path):
    result = _settings_in_a_fresh_process(
        tmp_path, {**PRODUCTION_OK, "OPENLINE_ALLOWED_HOSTS": "*"}
    )
    assert result.returncode != 0
    assert (
        "Openline refuses to start in production mode: OPENLINE_ALLOWED_HOSTS contains '*'"
        in result.stderr
    )
