"""``manage.py run_prod_like`` (``make run-prod-like``) starts a production layout that serves.

The real command, against the machine's PostgreSQL (a database of this test's own, created by
the command) and Redis: it migrates, loads the demo data, starts two web processes, a worker,
the messenger runner and the demo website, and Ctrl+C (SIGINT) stops every one of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from openline.conftest import free_port, unavailable

ROOT = Path(__file__).resolve().parents[3]

pytestmark = [pytest.mark.redis, pytest.mark.xdist_group("servers")]


@pytest.fixture
def postgres_server_url() -> str:
    """A URL of the machine's PostgreSQL with a fresh database name (dropped afterwards)."""
    import psycopg

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        base = "postgres://postgres@127.0.0.1:5432/postgres"
    name = f"ss_prodlike_{uuid.uuid4().hex[:10]}"
    maintenance = psycopg.conninfo.make_conninfo(base, dbname="postgres")
    try:
        psycopg.connect(maintenance, connect_timeout=3).close()
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL is not reachable: {exc}")
    info = psycopg.conninfo.conninfo_to_dict(base)
    user = info.get("user") or "postgres"
    yield f"postgres://{user}@{info.get('host') or '127.0.0.1'}:{info.get('port') or 5432}/{name}"
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for(predicate, timeout: float, what: str, output) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen in {timeout} s:\n{output()}")
        time.sleep(0.3)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_prod_like_starts_two_web_processes_and_a_worker_and_stops_them_all(
    postgres_server_url, redis_url, tmp_path
):
    web1, web2, demo = free_port(), free_port(), free_port()
    log = tempfile.NamedTemporaryFile(prefix="run-prod-like-", suffix=".log")  # noqa: SIM115
    env = {
        **os.environ,
        "OPENLINE_CHANNEL_PREFIX": f"ss_prodlike_{uuid.uuid4().hex[:8]}",
        "OPENLINE_LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    command = [
        *(sys.executable, "manage.py", "run_prod_like"),
        *("--database-url", postgres_server_url, "--redis-url", redis_url),
        *("--ports", f"{web1},{web2}", "--demo-port", str(demo), "--var-dir", str(tmp_path)),
    ]
    process = subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )

    def output() -> str:
        return Path(log.name).read_text(errors="replace")[-4000:]

    base1, base2 = f"http://127.0.0.1:{web1}", f"http://127.0.0.1:{web2}"
    try:
        # The command announces itself once both web processes answer.
        _wait_for(lambda: "Openline is running" in output(), 300, "startup", output)
        for base in (base1, base2):
            assert _answers(base + "/healthz"), output()
        printed = output()
        assert f"{base1}/console/" in printed and f"{base2}/console/" in printed
        assert f"http://127.0.0.1:{demo}/" in printed
        # Both web processes are ready: database and Redis reachable.
        for base in (base1, base2):
            assert httpx.get(base + "/readyz", timeout=10).status_code == 200
        # DEBUG is off: an unknown page is a plain 404, not Django's debug page.
        missing = httpx.get(base1 + "/no-such-page/", timeout=10)
        assert missing.status_code == 404 and "URLconf" not in missing.text
        # The demo website embeds the demo channel's chat from the first web process.
        demo_url = f"http://127.0.0.1:{demo}/"
        _wait_for(lambda: _answers(demo_url), 60, "the demo website", output)
        page = httpx.get(demo_url, timeout=10)
        assert page.status_code == 200 and f"127.0.0.1:{web1}" in page.text
        # The demo logins were printed; a session made on web 1 works on web 2.
        logins = json.loads((tmp_path / "demo-logins.json").read_text())
        username, password = next(iter(logins.items()))
        assert f"{username} / {password}" in printed
        with httpx.Client(base_url=base1, timeout=30) as client:
            form = client.get("/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
            assert token, form.text[:300]
            signed_in = client.post(
                "/login/",
                data={
                    "csrfmiddlewaretoken": token.group(1),
                    "username": username,
                    "password": password,
                },
            )
            assert signed_in.status_code == 302, signed_in.text[:300]
            session = client.cookies["sessionid"]
        profile = httpx.get(base2 + "/console/profile/", cookies={"sessionid": session}, timeout=30)
        assert profile.status_code == 200
        # Ctrl+C stops everything it started.
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, output()
        for base in (base1, base2, f"http://127.0.0.1:{demo}"):
            assert not _answers(base + "/healthz")
        leftovers = subprocess.run(
            ["pgrep", "-g", str(process.pid)], capture_output=True, text=True, check=False
        )
        assert leftovers.stdout.strip() == "", f"still running: {leftovers.stdout}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        log.close()
