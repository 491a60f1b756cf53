"""One write per answer (``core/http_coalesce.py``): the same bytes, in order, fewer writes.

uvicorn's own request cycle runs with a connection that records every write: the head of an
answer leaves with its body's first piece; HEAD answers, streamed bodies, a 100-continue and an
application that fails half-way send exactly the bytes they sent before, in the same order.
Then the launcher ``manage.py serve`` uses, as a real process with two workers, answers GET,
HEAD and pipelined keep-alive requests byte for byte as uvicorn does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from uvicorn.protocols.http.flow_control import FlowControl

from openline.core import http_coalesce, uvicorn_run
from openline.testing.aio import run_async


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def cycle_run(app, method: str = "GET", expect_100: bool = False) -> Recorder:
    recorder = Recorder()

    async def run():
        scope = {"type": "http", "method": method, "path": "/", "headers": []}
        cycle = http_coalesce.CoalescingCycle(
            scope,
            recorder,
            FlowControl(recorder),  # type: ignore[arg-type]
            logging.getLogger("test"),
            logging.getLogger("test.access"),
            False,
            [],
            asyncio.Event(),
            expect_100,
            True,
            lambda: None,
        )
        cycle.more_body = False
        cycle.message_event.set()
        await cycle.run_asgi(app)

    run_async(run)
    return recorder


def answer(body: bytes, *, length: bool = True, chunks: int = 1):
    async def app(scope, receive, send):
        headers = [(b"content-length", str(len(body) * chunks).encode())] if length else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for n in range(chunks):
            await send({"type": "http.response.body", "body": body, "more_body": n < chunks - 1})

    return app


def test_the_head_leaves_with_the_body_in_one_write():
    recorder = cycle_run(answer(b'{"ok": true}'))
    assert len(recorder.writes) == 1
    head, body = recorder.writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 12" in head
    assert body == b'{"ok": true}'


def test_a_head_answer_without_body_bytes_still_leaves():
    recorder = cycle_run(answer(b"ignored"), method="HEAD")
    assert len(recorder.writes) == 1 and recorder.writes[0].endswith(b"\r\n\r\n")
    assert recorder.writes[0].startswith(b"HTTP/1.1 200 OK")


def test_a_streamed_body_joins_only_its_first_piece_to_the_head():
    recorder = cycle_run(answer(b"part", length=False, chunks=3))
    assert len(recorder.writes) == 3
    assert recorder.writes[0].split(b"\r\n\r\n", 1)[1] == b"4\r\npart\r\n"
    assert recorder.writes[1:] == [b"4\r\npart\r\n", b"4\r\npart\r\n0\r\n\r\n"]


def test_an_application_failing_after_the_head_sends_the_head_then_closes():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("boom")

    recorder = cycle_run(app)
    assert recorder.closed
    assert len(recorder.writes) == 1 and recorder.writes[0].startswith(b"HTTP/1.1 200 OK")


def test_a_100_continue_keeps_its_place_before_the_answer():
    async def app(scope, receive, send):
        await receive()
        await answer(b"done")(scope, receive, send)

    recorder = cycle_run(app, expect_100=True)
    assert recorder.writes[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert recorder.writes[1].startswith(b"HTTP/1.1 200 OK") and recorder.writes[1].endswith(
        b"done"
    )


async def probe(scope, receive, send) -> None:
    """The launcher's application: a small JSON answer with its length, naming the worker."""
    body = b'{"pid": %d}' % os.getpid()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _read_answers(sock: socket.socket, count: int, head_only: bool = False) -> list[bytes]:
    data, answers = b"", []
    deadline = time.monotonic() + 10
    while len(answers) < count and time.monotonic() < deadline:
        while b"\r\n\r\n" in data and len(answers) < count:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = (
                0
                if head_only
                else int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            )
            if len(rest) < length:
                break
            answers.append(head + b"\r\n\r\n" + rest[:length])
            data = rest[length:]
        if len(answers) < count:
            data += sock.recv(65536)
    return answers


@pytest.fixture(scope="module")
def launcher():
    from openline.conftest import free_port

    port = free_port()
    command = [sys.executable, "-m", "openline.core.uvicorn_run"]
    command += ["openline.core.tests.test_http_coalesce:probe", "--host", "127.0.0.1"]
    command += [
        "--port",
        str(port),
        "--workers",
        "2",
        "--lifespan",
        "off",
        "--log-level",
        "warning",
    ]
    root = Path(uvicorn_run.__file__).resolve().parents[2]
    server = subprocess.Popen(command, cwd=root, env=dict(os.environ))
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.terminate()
                raise
            time.sleep(0.1)
    yield port
    server.terminate()
    server.wait(timeout=15)


def test_the_launcher_answers_pipelined_keep_alive_requests_in_order(launcher):
    with socket.create_connection(("127.0.0.1", launcher), timeout=10) as sock:
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        sock.sendall(request * 3)
        answers = _read_answers(sock, 3)
        assert len(answers) == 3
        for one in answers:
            assert one.startswith(b"HTTP/1.1 200 OK") and one.endswith(b"}") and b'{"pid": ' in one
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        heads = _read_answers(sock, 1, head_only=True)
        assert heads and heads[0].startswith(b"HTTP/1.1 200 OK")
        sock.sendall(request)
        assert _read_answers(sock, 1)[0].startswith(b"HTTP/1.1 200 OK")
