"""/readyz tells a load balancer the truth when the database is down.

A real server process is started with its database pointing somewhere that does not answer
(a closed PostgreSQL port, an SQLite file in a directory that does not exist): /healthz keeps
answering 200 (the process is up), /readyz answers 503 and names the database.
"""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from openline.testing.server_process import current_database_url, start_server

# A load balancer probe gives up after a few seconds: the 503 must come before that. A
# generous bound (the probe itself allows 2 s), so a slow CI machine does not flake.
ANSWER_WITHIN = 5.0


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(url, timeout=30)
    return response, time.monotonic() - started


@pytest.fixture
def server_without_database(request, tmp_path):
    server = start_server(database_url=request.param, var_dir=tmp_path / "var")
    yield server.url
    server.stop()


@pytest.mark.parametrize(
    "server_without_database",
    [
        pytest.param("postgres://openline@127.0.0.1:1/openline", id="postgresql-closed-port"),
        pytest.param("sqlite:////nonexistent-openline-dir/missing/db.sqlite3", id="sqlite-no-dir"),
    ],
    indirect=True,
)
def test_readyz_answers_503_naming_the_database_when_it_is_down(server_without_database):
    assert httpx.get(server_without_database + "/healthz", timeout=5).status_code == 200
    response, seconds = _timed_get(server_without_database + "/readyz")
    assert response.status_code == 503
    assert seconds < ANSWER_WITHIN, f"/readyz took {seconds:.1f} s to answer 503"
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "unreachable", "channel_layer": "ok", "signing_key": "ok"},
    }


def test_readyz_answers_200_from_a_real_server_on_a_reachable_database(tmp_path):
    """The same process setup with a database that answers is ready: the 503 above is the database."""
    server = start_server(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", var_dir=tmp_path / "var"
    )
    try:
        response = httpx.get(server.url + "/readyz", timeout=30)
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.json()["checks"] == {
        "database": "ok",
        "channel_layer": "ok",
        "signing_key": "ok",
    }


def test_readyz_answers_503_quickly_when_postgresql_accepts_but_never_answers(tmp_path):
    """A hung database (the port accepts, nothing ever replies) is not ready, and fast."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshake; nobody reads or writes
    port = silent.getsockname()[1]
    server = start_server(
        database_url=f"postgres://openline@127.0.0.1:{port}/openline", var_dir=tmp_path / "var"
    )
    try:
        response, seconds = _timed_get(server.url + "/readyz")
    finally:
        server.stop()
        silent.close()
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unreachable"
    assert seconds < ANSWER_WITHIN, f"/readyz took {seconds:.1f} s to answer 503"


def test_readyz_answers_200_from_a_real_server_on_a_reachable_postgresql(postgres_only, tmp_path):
    """The fast probe still says ready when PostgreSQL answers."""
    server = start_server(database_url=current_database_url(), var_dir=tmp_path / "var")
    try:
        response, seconds = _timed_get(server.url + "/readyz")
    finally:
        server.stop()
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {
        "database": "ok",
        "channel_layer": "ok",
        "signing_key": "ok",
    }
    assert seconds < ANSWER_WITHIN
