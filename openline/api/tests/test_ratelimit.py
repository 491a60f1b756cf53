"""API rate limits: per token (and per signed-in user), shared by every server process."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from django.test import Client

from openline.accounts.api_tokens import create_token
from openline.testing.server_process import current_database_url, start_server

RECORDS = "/api/v1/consents/records"


def fresh_window(window: int) -> None:
    """Wait when a fixed window is about to end, so a test's requests all fall in one."""
    left = window - time.time() % window
    if left < 10:
        time.sleep(left + 0.1)


@pytest.mark.django_db
def test_a_token_over_its_rate_gets_429_with_retry_after(
    settings, own_cache, administrator, auditor
):
    settings.OPENLINE_API_RATE = (3, 60)
    fresh_window(60)
    busy = create_token(administrator, "busy").secret
    other = create_token(auditor, "other").secret
    client = Client()
    answers = [
        client.get(RECORDS, HTTP_AUTHORIZATION=f"Bearer {busy}").status_code for _ in range(4)
    ]
    assert answers == [200, 200, 200, 429]
    refused = client.get(RECORDS, HTTP_AUTHORIZATION=f"Bearer {busy}")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 61
    assert refused.json()["code"] == "rate_limited"
    # Another token has a bucket of its own.
    assert client.get(RECORDS, HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200


@pytest.mark.django_db
def test_console_sessions_are_limited_per_user(settings, own_cache, admin_client):
    settings.OPENLINE_API_RATE = (2, 60)
    fresh_window(60)
    answers = [admin_client.get(RECORDS).status_code for _ in range(3)]
    assert answers == [200, 200, 429]


@pytest.mark.django_db(transaction=True)
def test_the_limit_is_shared_by_two_server_processes(tmp_path, redis_url, administrator):
    secret = create_token(administrator, "shared").secret
    env = {
        "REDIS_URL": redis_url,
        "OPENLINE_API_RATE": "4/120",
        # A prefix of its own, so other runs sharing this Redis count elsewhere.
        "OPENLINE_CHANNEL_PREFIX": f"ratetest-{uuid.uuid4().hex[:8]}",
    }
    servers = [
        start_server(database_url=current_database_url(), var_dir=tmp_path / "var", env=env)
        for _ in range(2)
    ]
    try:
        fresh_window(120)
        headers = {"Authorization": f"Bearer {secret}"}
        answers = []
        for index in range(6):
            server = servers[index % 2]
            response = httpx.get(f"{server.url}{RECORDS}", headers=headers, timeout=20)
            answers.append(response.status_code)
        assert answers == [200, 200, 200, 200, 429, 429]
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["code"] == "rate_limited"
    finally:
        for server in servers:
            server.stop()
