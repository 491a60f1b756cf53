"""/readyz tells a load balancer the truth when the database is down.

A real server process is started with its database pointing somewhere that does not answer
(a closed PostgreSQL port, an SQLite file in a directory that does not exist): /healthz keeps
answering 200 (the process is up), /readyz answers 503 and names the database.
"""

from __future__ import annotations

import httpx
import pytest

from openline.testing.server_process import start_server


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
    response = httpx.get(server_without_database + "/readyz", timeout=30)
    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "checks": {"database": "unreachable", "channel_layer": "ok"},
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
    assert response.json()["checks"] == {"database": "ok", "channel_layer": "ok"}
