"""A signed-in session left unused for longer than OPENLINE_SESSION_IDLE_TIMEOUT is signed out."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from openline.accounts import middleware
from openline.config import ConfigError, load_config
from openline.conftest import PASSWORD


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000]
    monkeypatch.setattr(middleware, "_now", lambda: now[0])
    return now


def _signed_in(username: str = "otto") -> Client:
    client = Client()
    assert client.post("/login/", {"username": username, "password": PASSWORD}).status_code == 302
    return client


def test_a_session_idle_longer_than_the_timeout_is_signed_out(settings, operator, clock):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 600
    client = _signed_in()
    clock[0] += 599
    assert client.get("/console/contact-center/").status_code == 200
    clock[0] += 601
    response = client.get("/console/contact-center/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/console/contact-center/"
    assert "_auth_user_id" not in client.session
    login_page = client.get(response["Location"]).content.decode()
    assert "You were signed out after 10 minutes without activity" in login_page
    # Signed out for good: coming back does not revive the session.
    assert client.get("/console/contact-center/").status_code == 302


def test_the_api_answers_401_when_the_session_went_idle(settings, operator, clock):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 600
    client = _signed_in()
    assert client.get("/api/v1/crm/items").status_code == 200
    clock[0] += 601
    response = client.get("/api/v1/crm/items")
    assert response.status_code == 401
    assert "without activity" in response.json()["detail"]


def test_activity_keeps_a_session_alive(settings, operator, clock):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 600
    client = _signed_in()
    for _ in range(12):  # an hour of work, one request every five minutes
        clock[0] += 300
        assert client.get("/console/contact-center/").status_code == 200


def test_a_zero_timeout_turns_the_idle_sign_out_off(settings, operator, clock):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 0
    client = _signed_in()
    clock[0] += 10 * 365 * 86400
    assert client.get("/console/contact-center/").status_code == 200


def test_last_activity_is_written_at_most_once_a_minute(settings, operator, clock):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 3600
    client = _signed_in()
    client.get("/console/contact-center/")
    stamp = client.session[middleware.LAST_SEEN]
    clock[0] += 30
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/console/contact-center/").status_code == 200
    session_writes = [
        q["sql"] for q in queries if "django_session" in q["sql"] and "SELECT" not in q["sql"]
    ]
    assert session_writes == []
    assert client.session[middleware.LAST_SEEN] == stamp
    clock[0] += 31
    client.get("/console/contact-center/")
    assert client.session[middleware.LAST_SEEN] == stamp + 61


def test_a_short_real_timeout_signs_out_in_real_time(settings, operator):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 1
    client = _signed_in()
    assert client.get("/console/contact-center/").status_code == 200
    time.sleep(2.2)
    response = client.get("/console/contact-center/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_public_pages_carry_on_anonymously_after_an_idle_sign_out(settings, operator, clock):
    settings.OPENLINE_SESSION_IDLE_TIMEOUT = 600
    client = _signed_in()
    clock[0] += 601
    assert client.get("/login/").status_code == 200  # the form, not a redirect loop
    assert "_auth_user_id" not in client.session


def test_the_idle_timeout_variable_is_parsed():
    base = {"OPENLINE_SECRET_KEY": "x" * 40}
    assert load_config(base).session_idle_timeout == 8 * 3600
    assert load_config({**base, "OPENLINE_SESSION_IDLE_TIMEOUT": "0"}).session_idle_timeout == 0
    assert load_config({**base, "OPENLINE_SESSION_IDLE_TIMEOUT": "900"}).session_idle_timeout == 900
    for bad in ("-1", "ten", "1.5"):
        with pytest.raises(ConfigError, match="OPENLINE_SESSION_IDLE_TIMEOUT"):
            load_config({**base, "OPENLINE_SESSION_IDLE_TIMEOUT": bad})
