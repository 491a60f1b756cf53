import ipaddress

import pytest

from openline.config import ConfigError, load_config


def test_embedded_defaults_need_no_variables(tmp_path):
    config = load_config({"OPENLINE_VAR_DIR": str(tmp_path)})
    assert config.env == "development"
    assert config.debug is True
    assert config.database_url == f"sqlite:///{tmp_path / 'openline.sqlite3'}"
    assert config.redis_url is None
    assert "localhost" in config.allowed_hosts


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = load_config({"OPENLINE_VAR_DIR": str(tmp_path)}).secret_key
    second = load_config({"OPENLINE_VAR_DIR": str(tmp_path)}).secret_key
    assert first == second and len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_database_and_redis_urls_switch_backends(tmp_path):
    config = load_config(
        {
            "OPENLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
        }
    )
    assert config.database_url.startswith("postgres://")
    assert config.redis_url == "redis://127.0.0.1:6379/0"


PRODUCTION_OK = {
    "OPENLINE_ENV": "production",
    "OPENLINE_SECRET_KEY": "x" * 40,
    "OPENLINE_ALLOWED_HOSTS": "chat.example.com",
    "OPENLINE_PUBLIC_URL": "https://chat.example.com",
}


def test_production_starts_when_complete(tmp_path):
    config = load_config({**PRODUCTION_OK, "OPENLINE_VAR_DIR": str(tmp_path)})
    assert config.production and not config.debug and config.secure_cookies
    assert config.allowed_hosts == ["chat.example.com"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"OPENLINE_SECRET_KEY": ""}, "OPENLINE_SECRET_KEY is not set"),
        ({"OPENLINE_SECRET_KEY": "short"}, "shorter than 32"),
        ({"OPENLINE_DEBUG": "true"}, "OPENLINE_DEBUG is on"),
        ({"OPENLINE_ALLOWED_HOSTS": ""}, "OPENLINE_ALLOWED_HOSTS is empty"),
        ({"OPENLINE_PUBLIC_URL": ""}, "OPENLINE_PUBLIC_URL is not set"),
    ],
)
def test_production_refuses_incomplete_settings(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config({**PRODUCTION_OK, **override, "OPENLINE_VAR_DIR": str(tmp_path)})


def test_production_never_generates_a_secret(tmp_path):
    with pytest.raises(ConfigError):
        load_config({**PRODUCTION_OK, "OPENLINE_SECRET_KEY": "", "OPENLINE_VAR_DIR": str(tmp_path)})
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OPENLINE_DEBUG", "maybe", "OPENLINE_DEBUG must be one of"),
        ("OPENLINE_ENV", "staging", "OPENLINE_ENV must be"),
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL must be"),
        ("REDIS_URL", "http://x", "REDIS_URL must start"),
        ("OPENLINE_TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip", "not-an-ip"),
        ("OPENLINE_LOG_LEVEL", "LOUD", "OPENLINE_LOG_LEVEL"),
        ("OPENLINE_PUBLIC_URL", "chat.example.com", "OPENLINE_PUBLIC_URL must start"),
    ],
)
def test_invalid_values_fail_loudly(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=message):
        load_config({name: value, "OPENLINE_VAR_DIR": str(tmp_path)})


def test_lists_and_networks_are_parsed(tmp_path):
    config = load_config(
        {
            "OPENLINE_VAR_DIR": str(tmp_path),
            "OPENLINE_ALLOWED_HOSTS": " a.example , b.example ,",
            "OPENLINE_TRUSTED_PROXIES": "10.0.0.1, 2001:db8::/32",
            "OPENLINE_CSRF_TRUSTED_ORIGINS": "https://a.example",
        }
    )
    assert config.allowed_hosts == ["a.example", "b.example"]
    assert config.trusted_proxies == [
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("2001:db8::/32"),
    ]
    assert config.csrf_trusted_origins == ["https://a.example"]
