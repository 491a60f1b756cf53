"""``manage.py serve`` hands uvicorn its listening socket as the TCP socket it is."""

from __future__ import annotations

import socket

from openline.core import uvicorn_run
from openline.core.serving import bind


def test_inherited_listener_is_read_as_tcp_so_connections_get_tcp_nodelay():
    bound = bind("127.0.0.1", 0)
    try:
        # What uvicorn asks for (a Unix socket) is not what it gets: the descriptor's own family.
        sock = uvicorn_run._fromfd(bound.sock.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            assert sock.family == socket.AF_INET
            assert sock.type == socket.SOCK_STREAM
            client = socket.create_connection(sock.getsockname()[:2])
            accepted, _ = sock.accept()
            try:
                # asyncio and uvloop set TCP_NODELAY only on sockets whose family is IPv4/IPv6.
                assert accepted.family == socket.AF_INET
                accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            finally:
                accepted.close()
                client.close()
        finally:
            sock.close()
    finally:
        bound.sock.close()


def test_serve_runs_uvicorn_through_the_tcp_reading_launcher():
    from pathlib import Path

    source = Path(uvicorn_run.__file__).parent / "management" / "commands" / "serve.py"
    assert '"openline.core.uvicorn_run"' in source.read_text()


def _thresholds_of_workers(env_value: str | None) -> dict[int, list[int]]:
    """Start the launcher with two workers; return each worker's collector thresholds."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from openline.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "OPENLINE_GC_THRESHOLD"}
    if env_value is not None:
        env["OPENLINE_GC_THRESHOLD"] = env_value
    command = [sys.executable, "-m", "openline.core.uvicorn_run"]
    command += ["openline.core.tests.gc_probe_app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--lifespan", "off"]
    command += ["--log-level", "warning"]
    root = Path(uvicorn_run.__file__).resolve().parents[2]
    server = subprocess.Popen(command, cwd=root, env=env)
    seen: dict[int, list[int]] = {}
    try:
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.1)
                continue
            seen[answer["pid"]] = answer["thresholds"]
    finally:
        server.terminate()
        server.wait(timeout=15)
    return seen


def test_every_worker_gets_the_servers_collector_thresholds():
    seen = _thresholds_of_workers(None)
    assert len(seen) == 2 and all(t == list(uvicorn_run.GC_THRESHOLD) for t in seen.values())
    seen = _thresholds_of_workers("default")
    assert seen and all(t == [700, 10, 10] for t in seen.values())


def test_gc_threshold_setting_is_checked():
    import gc

    import pytest

    before = gc.get_threshold()
    try:
        assert uvicorn_run.gc_thresholds("5000,10") == (5000, 10)
        assert gc.get_threshold()[:2] == (5000, 10)
        assert uvicorn_run.gc_thresholds("default") is None
        for bad in ("0,1,1", "a,b", "1,2,3,4"):
            with pytest.raises(ValueError):
                uvicorn_run.gc_thresholds(bad)
    finally:
        gc.set_threshold(*before)
