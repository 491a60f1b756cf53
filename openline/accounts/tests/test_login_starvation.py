"""Password hashing under a burst of bad logins must not starve a real server.

Argon2 as Django configures it costs ~100 MiB and most of a second of CPU per check; sixteen
at once on a small host would leave nothing for anyone else. A real uvicorn process is
attacked over HTTP while ``/healthz`` is probed, the way a load balancer would.
"""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest

from openline.conftest import PASSWORD, free_port
from openline.core.tests.servers import ServerProcess, server_env, uvicorn_command

pytestmark = pytest.mark.xdist_group("servers")

ATTACKERS = 16
# Generous on purpose: this is liveness, not latency (latency is measured in bench/).
PROBE_TIMEOUT = 5.0


def _bad_login(base: str, username: str) -> int:
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        response = client.post(
            "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": username,
                "password": "not-the-password-" + username,
            },
            headers={"Referer": base + "/login/"},
        )
        return response.status_code


@pytest.fixture
def server(transactional_db, operator):
    # Generous throttle limits: this test is about the cost of hashing, not about throttling.
    env = server_env(OPENLINE_LOGIN_RATE_ACCOUNT="1000/900", OPENLINE_LOGIN_RATE_IP="1000/900")
    port = free_port()
    process = ServerProcess(uvicorn_command(port), port, env).wait_ready()
    yield process
    process.stop()


def test_sixteen_parallel_bad_logins_do_not_starve_healthz(server, operator):
    # Liveness, not a speed figure (speed lives in bench/): every probe of /healthz during the
    # attack is answered, well inside a load balancer's usual probe timeout. Before password
    # checks were bounded, sixteen Argon2 hashes at once kept the process busy for seconds.
    assert _bad_login(server.url, "warm-up") in (200, 429, 503)
    statuses: list[int] = []
    done = threading.Event()

    def attacker(index: int) -> None:
        # Distinct accounts (known and unknown), so per-account throttling alone is no defence.
        username = "otto" if index == 0 else f"nobody-{index}"
        while not done.is_set():
            statuses.append(_bad_login(server.url, username))

    threads = [threading.Thread(target=attacker, args=(i,), daemon=True) for i in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # let the attack get going
    probes = 0
    with httpx.Client(base_url=server.url, timeout=PROBE_TIMEOUT) as probe:
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            # A probe that is not answered within PROBE_TIMEOUT raises httpx.ReadTimeout.
            assert probe.get("/healthz").status_code == 200
            probes += 1
            time.sleep(0.05)
    done.set()
    for thread in threads:
        thread.join(timeout=60)

    assert probes >= 5
    assert statuses, "no bad login was answered at all"
    assert set(statuses) <= {200, 429, 503}, statuses  # refused, throttled or busy; never a 500
    assert 200 in statuses, "no password was actually checked: the test proves nothing"

    # And a real user still gets in while the attack winds down.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/login/",
            data={"csrfmiddlewaretoken": token, "username": "otto", "password": PASSWORD},
            headers={"Referer": server.url + "/login/"},
        )
        assert response.status_code == 302, response.text[:300]


def test_parallel_sign_ins_never_hash_more_passwords_at_once_than_configured(
    transactional_db, operator, settings, monkeypatch
):
    # The bound itself, counted where the hashing happens: sixteen threads sign in at once and
    # the number of Argon2 verifications in flight never exceeds OPENLINE_LOGIN_CONCURRENCY.
    from django.contrib.auth.hashers import Argon2PasswordHasher
    from django.test import Client

    settings.OPENLINE_LOGIN_RATE_ACCOUNT = (1000, 900)
    settings.OPENLINE_LOGIN_RATE_IP = (1000, 900)
    settings.OPENLINE_LOGIN_CONCURRENCY = 2
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    original = Argon2PasswordHasher.verify

    def counting_verify(self, password, encoded):
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            time.sleep(0.05)  # widen the window in which an unbounded check would overlap
            return original(self, password, encoded)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(Argon2PasswordHasher, "verify", counting_verify)
    statuses: list[int] = []
    barrier = threading.Barrier(ATTACKERS)

    def sign_in() -> None:
        from django.db import connection

        client = Client()
        barrier.wait()
        try:
            response = client.post("/login/", {"username": "otto", "password": "wrong-" * 3})
            statuses.append(response.status_code)
        finally:
            # The test client keeps a thread's connection open; give it back to the pool.
            connection.close()

    threads = [threading.Thread(target=sign_in) for _ in range(ATTACKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(statuses) == ATTACKERS and set(statuses) == {200}, statuses
    assert peak == 2, f"{peak} passwords were hashed at once"


@pytest.fixture
def default_server(transactional_db, operator):
    port = free_port()
    process = ServerProcess(uvicorn_command(port), port, server_env()).wait_ready()
    yield process
    process.stop()


def test_sixteen_parallel_guesses_at_one_account_get_only_five_checks(default_server, operator):
    # Counted before hashing, atomically: parallel guesses cannot all pass the check at once.
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(_bad_login(default_server.url, "otto")))
        for _ in range(ATTACKERS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [200] * 5 + [429] * (ATTACKERS - 5)
