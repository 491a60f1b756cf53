"""Sign-in throttling per account and per client IP, with one answer for known and unknown names."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from django.test import Client

from openline.accounts import throttle
from openline.config import ConfigError, load_config
from openline.conftest import PASSWORD, free_port
from openline.core.tests.servers import ServerProcess, server_env, uvicorn_command

THROTTLED = re.compile(r"Too many failed sign-in attempts\. Try again in \d+ minutes?\.")


def _login(client: Client, username: str, password: str = "wrong-password", **extra):
    return client.post("/login/", {"username": username, "password": password}, **extra)


@pytest.fixture
def count_hashing(monkeypatch):
    """Count the calls that check a password (each costs an Argon2 hash)."""
    import django.contrib.auth.forms as auth_forms

    calls: list[str] = []
    real = auth_forms.authenticate

    def counting(request=None, **credentials):
        calls.append(credentials.get("username"))
        return real(request, **credentials)

    monkeypatch.setattr(auth_forms, "authenticate", counting)
    return calls


def test_account_is_throttled_after_five_failures_with_429_and_a_clear_message(
    client, operator, count_hashing
):
    for _ in range(5):
        response = _login(client, "otto")
        assert response.status_code == 200
        assert b"did not match" in response.content
    throttled = _login(client, "otto")
    assert throttled.status_code == 429
    assert THROTTLED.search(throttled.content.decode()), throttled.content.decode()
    assert 0 < int(throttled["Retry-After"]) <= 900
    # Even the right password is refused now, and checking it costs no hashing.
    assert _login(client, "otto", PASSWORD).status_code == 429
    assert len(count_hashing) == 5
    assert "_auth_user_id" not in client.session


def test_unknown_account_is_throttled_exactly_like_a_known_one(client, operator, settings):
    settings.OPENLINE_LOGIN_RATE_IP = (1000, 900)

    def answers(username: str) -> list[tuple[int, str]]:
        seen = []
        for _ in range(7):
            response = _login(client, username)
            text = re.search(r'role="alert">(.*?)</div>', response.content.decode(), re.S)
            seen.append((response.status_code, text.group(1).strip() if text else ""))
        return seen

    known, unknown = answers("otto"), answers("nobody-here")
    assert known == unknown
    assert [status for status, _ in known] == [200] * 5 + [429] * 2
    assert THROTTLED.fullmatch(known[-1][1])


def test_account_throttle_ignores_case_and_spaces(client, operator):
    for name in ("otto", "OTTO", " Otto ", "oTTo", "otto"):
        assert _login(client, name).status_code == 200
    assert _login(client, "Otto").status_code == 429


def test_ip_is_throttled_across_accounts(client, db, settings):
    settings.OPENLINE_LOGIN_RATE_IP = (3, 900)
    for index in range(3):
        assert _login(client, f"user-{index}", REMOTE_ADDR="198.51.100.7").status_code == 200
    response = _login(client, "user-99", REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 429
    assert THROTTLED.search(response.content.decode())
    # Another client address has its own allowance.
    assert _login(client, "user-99", REMOTE_ADDR="198.51.100.8").status_code == 200


def test_forged_x_forwarded_for_does_not_escape_the_ip_throttle(client, db, settings):
    settings.OPENLINE_TRUSTED_PROXIES = []
    settings.OPENLINE_LOGIN_RATE_IP = (3, 900)
    for index in range(3):
        forged = f"203.0.113.{index}"
        assert _login(client, f"user-{index}", HTTP_X_FORWARDED_FOR=forged).status_code == 200
    assert _login(client, "user-9", HTTP_X_FORWARDED_FOR="203.0.113.50").status_code == 429


def test_success_resets_the_account_counter(client, operator):
    for _ in range(4):
        assert _login(client, "otto").status_code == 200
    assert _login(client, "otto", PASSWORD).status_code == 302
    client.post("/logout/")
    # Without the reset the next failure would be the sixth and get 429.
    for _ in range(5):
        assert _login(client, "otto").status_code == 200
    assert _login(client, "otto").status_code == 429


def test_success_gives_the_ip_its_attempt_back(client, operator, settings):
    settings.OPENLINE_LOGIN_RATE_IP = (2, 900)
    for _ in range(4):
        assert _login(client, "otto", PASSWORD).status_code == 302
        client.post("/logout/")
    assert _login(client, "someone").status_code == 200


def test_throttle_ends_with_its_window(client, operator, monkeypatch):
    now = [1_000_000.0]
    monkeypatch.setattr(throttle, "_now", lambda: now[0])
    for _ in range(5):
        _login(client, "otto")
    response = _login(client, "otto", PASSWORD)
    assert response.status_code == 429
    now[0] += int(response["Retry-After"])
    assert _login(client, "otto", PASSWORD).status_code == 302


def test_no_free_password_check_slot_answers_busy_and_counts_nothing(client, operator, monkeypatch):
    monkeypatch.setattr(throttle, "SLOT_WAIT_SECONDS", 0.05)
    with throttle.password_check_slot():  # this process's only slot is taken
        response = _login(client, "otto")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert b"The server is busy checking other sign-ins" in response.content
    # The attempt that never ran gave its count back: five real failures still fit.
    for _ in range(5):
        assert _login(client, "otto").status_code == 200
    assert _login(client, "otto").status_code == 429


def test_login_rate_variables_are_parsed_and_bad_values_refused():
    config = load_config(
        {
            "OPENLINE_SECRET_KEY": "x" * 40,
            "OPENLINE_LOGIN_RATE_ACCOUNT": "3/60",
            "OPENLINE_LOGIN_RATE_IP": "50/3600",
            "OPENLINE_LOGIN_CONCURRENCY": "2",
        }
    )
    assert config.login_rate_account == (3, 60)
    assert config.login_rate_ip == (50, 3600)
    assert config.login_concurrency == 2
    defaults = load_config({"OPENLINE_SECRET_KEY": "x" * 40})
    assert (defaults.login_rate_account, defaults.login_rate_ip) == ((5, 900), (20, 900))
    for bad in ("5", "five/900", "0/900", "5/0", "5/-1"):
        with pytest.raises(ConfigError, match="OPENLINE_LOGIN_RATE_ACCOUNT"):
            load_config({"OPENLINE_SECRET_KEY": "x" * 40, "OPENLINE_LOGIN_RATE_ACCOUNT": bad})
    with pytest.raises(ConfigError, match="OPENLINE_LOGIN_CONCURRENCY"):
        load_config({"OPENLINE_SECRET_KEY": "x" * 40, "OPENLINE_LOGIN_CONCURRENCY": "0"})


# ----- shared across processes through Redis ---------------------------------------------


def _http_login(base: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        return client.post(
            "/login/",
            data={"csrfmiddlewaretoken": token, "username": username, "password": password},
            headers={"Referer": base + "/login/"},
        )


@pytest.mark.redis
@pytest.mark.xdist_group("servers")
def test_throttle_is_shared_by_two_server_processes_through_redis(redis_url, transactional_db):
    username = f"ghost-{uuid.uuid4().hex[:8]}"
    # One deployment: both processes share one Redis and one key prefix.
    env = server_env(REDIS_URL=redis_url, OPENLINE_LOGIN_RATE_ACCOUNT="4/900")
    servers = []
    try:
        for _ in range(2):
            port = free_port()
            servers.append(ServerProcess(uvicorn_command(port), port, env))
        for server in servers:
            server.wait_ready()
        first, second = servers
        # Two failures on each process: four in all, the account's limit.
        statuses = [_http_login(s.url, username, "wrong").status_code for s in servers * 2]
        assert statuses == [200, 200, 200, 200]
        # The fifth is refused by either process: they count together.
        for server in servers:
            response = _http_login(server.url, username, "wrong")
            assert response.status_code == 429, server.output()
            assert THROTTLED.search(response.text)
    finally:
        for server in servers:
            server.stop()


def test_sign_in_still_works_and_is_throttled_when_the_shared_cache_is_down(
    client, operator, settings
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }
    throttle._fallback.clear()
    assert _login(client, "otto", PASSWORD).status_code == 302
    client.post("/logout/")
    for _ in range(5):
        assert _login(client, "otto").status_code == 200
    assert _login(client, "otto").status_code == 429
