"""``manage.py serve`` as a real process: dual-stack on ``::``, the demo website beside it.

Each test starts serve the way ``make run`` does, on its own SQLite copy and free ports, reads the
URLs it prints, talks to them over IPv4 and IPv6, and stops it with SIGTERM as a service manager
would: nothing of it may be left running.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openline.core.serving import ipv6_loopback_available
from openline.core.tests.serve_run import ROOT, ServeRun, prepared

IPV6 = ipv6_loopback_available()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return prepared(tmp_path_factory.mktemp("serve-template"))


@pytest.fixture
def serve_run(template):
    runs: list[ServeRun] = []

    def start(*args, **kwargs) -> ServeRun:
        run = ServeRun(template, *args, **kwargs)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.cleanup()


def refused(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) != 0


def test_serve_on_every_interface_answers_ipv4_and_ipv6_and_stops_with_its_demo_site(
    serve_run,
):
    run = serve_run("::")
    run.load_demo()
    run.start()
    port, demo = run.port, run.demo_port
    assert run.demo_url == f"http://127.0.0.1:{demo}/"
    assert set(run.logins()) == {"admin", "operator", "auditor"}
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert "shop" in httpx.get(f"http://127.0.0.1:{demo}/delivery/").text.lower()
    if IPV6:
        assert run.console_url == f"http://[::1]:{port}/console/"
        assert httpx.get(f"http://[::1]:{port}/healthz").status_code == 200
        # The demo website stays on 127.0.0.1: unauthenticated, it is for this machine only.
        assert refused("::1", demo)
        assert "Note:" not in run.output()
    else:
        # Only without IPv6 in the kernel: "::" falls back to IPv4, and serve says so.
        assert "IPv6 is not available" in run.output()
    assert run.stop() == 0
    assert run.leftovers == []
    assert refused("127.0.0.1", port) and refused("127.0.0.1", demo)


def test_openline_on_every_ipv4_interface_keeps_the_demo_website_on_loopback(serve_run):
    run = serve_run("0.0.0.0")
    run.load_demo()
    run.start()
    assert run.demo_url == f"http://127.0.0.1:{run.demo_port}/"
    assert "shop" in httpx.get(run.demo_url).text.lower()
    # 127.0.0.2 reaches a socket bound to 0.0.0.0, never one bound to 127.0.0.1.
    assert not refused("127.0.0.2", run.port)
    assert refused("127.0.0.2", run.demo_port)
    assert run.stop() == 0
    assert run.leftovers == []


def test_the_demo_site_command_alone_listens_on_loopback_too(template):
    run = ServeRun(template, "0.0.0.0")
    try:
        with open(run.log, "wb") as out:
            run.process = subprocess.Popen(
                [sys.executable, "manage.py", "demo_site"],
                cwd=ROOT,
                env=run.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        url = f"http://127.0.0.1:{run.demo_port}/"
        assert run.wait_answers(url).status_code == 200
        assert f"Demo website: {url}" in run.output()
        assert refused("127.0.0.2", run.demo_port)
        run.stop()
        assert run.leftovers == []
    finally:
        run.cleanup()


class ServeWithArgs(ServeRun):
    """``manage.py serve`` with command-line options."""

    args: tuple[str, ...] = ()

    def start(self, wait: bool = True) -> ServeRun:
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "serve", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_printed()
        return self


PRODUCTION = {
    "OPENLINE_ENV": "production",
    "OPENLINE_SECRET_KEY": "x" * 48,
    "OPENLINE_ALLOWED_HOSTS": "127.0.0.1",
    "OPENLINE_PUBLIC_URL": "https://chat.example.com",
}


@pytest.mark.parametrize(
    ("extra_env", "args"),
    [({"OPENLINE_DEMO_SITE": "1"}, ()), ({}, ("--demo-port", "{demo}"))],
    ids=["OPENLINE_DEMO_SITE=1", "--demo-port"],
)
def test_production_never_starts_the_demo_website(template, tmp_path, extra_env, args):
    key = tmp_path / "registry-ed25519.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    env = {**PRODUCTION, "OPENLINE_SIGNING_KEY_FILE": str(key), **extra_env}
    run = ServeWithArgs(template, env=env)
    run.args = tuple(a.format(demo=run.demo_port) for a in args)
    try:
        run.start()
        assert run.printed("Demo website") == (
            "not started: it never runs in production (OPENLINE_ENV=production)"
        )
        assert run.console_url == "https://chat.example.com/console/"
        run.wait_answers(f"http://127.0.0.1:{run.port}/healthz")
        assert refused("127.0.0.1", run.demo_port)
        assert "demo_site" not in " ".join(run.group_alive())
        assert run.stop() == 0
        assert run.leftovers == []
    finally:
        run.cleanup()


@pytest.mark.redis
def test_two_web_workers_share_the_dual_stack_socket(serve_run, redis_url):
    if not IPV6:
        pytest.skip("this kernel has no IPv6: binding [::1] fails")
    run = serve_run(
        "::",
        workers=2,
        env={
            "REDIS_URL": redis_url,
            "OPENLINE_CHANNEL_PREFIX": f"test-{uuid.uuid4().hex[:12]}",
            "OPENLINE_DEMO_SITE": "0",
        },
    ).start()
    for _ in range(6):
        for host in ("127.0.0.1", "[::1]"):
            response = httpx.get(f"http://{host}:{run.port}/healthz", timeout=5)
            assert response.status_code == 200
    assert httpx.get(f"http://[::1]:{run.port}/readyz", timeout=10).status_code == 200
    assert run.stop() == 0
    assert run.leftovers == []


def test_the_demo_website_can_be_switched_off(serve_run):
    run = serve_run(env={"OPENLINE_DEMO_SITE": "0"}).start()
    assert run.printed("Demo website") is None
    assert run.console_url == f"http://127.0.0.1:{run.port}/console/"
    assert refused("127.0.0.1", run.demo_port)
    assert run.stop() == 0


def test_a_taken_demo_port_leaves_openline_running_and_says_why(serve_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        run = serve_run(demo_port=taken.getsockname()[1]).start()
        message = run.printed("Demo website") or ""
        assert message.startswith("not started: cannot listen on 127.0.0.1:")
        assert "OPENLINE_DEMO_PORT" in message
        assert httpx.get(f"http://127.0.0.1:{run.port}/healthz").status_code == 200
        assert run.stop() == 0


def test_a_taken_port_stops_serve_with_one_clear_line(serve_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        run = serve_run(port=taken.getsockname()[1]).start(wait=False)
        assert run.process is not None
        assert run.process.wait(timeout=60) == 2
    assert f"cannot listen on 127.0.0.1:{run.port}" in run.output()
    assert "OPENLINE_PORT" in run.output()
    assert "Traceback" not in run.output()
