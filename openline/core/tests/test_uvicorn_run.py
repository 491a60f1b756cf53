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
