"""Run uvicorn on the listening socket ``manage.py serve`` bound, as the TCP socket it is.

uvicorn opens an inherited ``--fd`` with ``socket.fromfd(fd, AF_UNIX, ...)``, so the event loop
takes the listener for a Unix socket and never sets ``TCP_NODELAY`` on the connections it
accepts: an answer written in two parts (head, then body) then waits for the client's delayed
ACK, about 40 ms a request. Here ``socket.fromfd`` reads the family from the descriptor itself;
everything else is uvicorn's own command line. Each answer's head and body leave in one write
(``core/http_coalesce.py``).

It also sets the garbage collector's thresholds for the server process
(``OPENLINE_GC_THRESHOLD``, default ``20000,20,100``; ``default`` keeps Python's 700,10,10).
Every open websocket keeps a few hundred objects alive, and in a reconnection storm each
connection's short-lived objects outlive Python's default young generations while the loop is
busy, so they are promoted and every socket held is walked again and again by full
collections: about a fifth of a worker's time per connection, measured. Larger young
generations let those objects die young. uvicorn starts ``--workers`` with the spawn method,
which runs this module again (as ``__mp_main__``) in each worker before the application loads.
"""

from __future__ import annotations

import gc
import os
import socket
import sys

GC_THRESHOLD = (20_000, 20, 100)


def _fromfd(fd: int, family: int = -1, type: int = -1, proto: int = 0) -> socket.socket:  # noqa: A002
    # socket.socket detects family, type and protocol from a descriptor when given -1.
    return socket.socket(fileno=os.dup(fd))


def gc_thresholds(value: str | None = None) -> tuple[int, ...] | None:
    """Set the collector's thresholds from ``OPENLINE_GC_THRESHOLD``; return them (None: Python's)."""
    text = (os.environ.get("OPENLINE_GC_THRESHOLD", "") if value is None else value).strip()
    if text == "default":
        return None
    thresholds = tuple(int(part) for part in text.split(",")) if text else GC_THRESHOLD
    if not 1 <= len(thresholds) <= 3 or min(thresholds) < 1:
        raise ValueError(f"OPENLINE_GC_THRESHOLD must be one to three positive integers: {text!r}")
    gc.set_threshold(*thresholds)
    return thresholds


def main() -> None:
    socket.fromfd = _fromfd  # type: ignore[assignment]
    from uvicorn.main import main as uvicorn_main

    sys.argv[0] = "uvicorn"
    uvicorn_main()


if __name__ in ("__main__", "__mp_main__"):  # the server process, or one of its workers
    gc_thresholds()
    from openline.core import http_coalesce

    http_coalesce.install()  # one write per answer: the head leaves with the body
if __name__ == "__main__":
    main()
