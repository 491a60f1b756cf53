"""Run uvicorn on the listening socket ``manage.py serve`` bound, as the TCP socket it is.

uvicorn opens an inherited ``--fd`` with ``socket.fromfd(fd, AF_UNIX, ...)``, so the event loop
takes the listener for a Unix socket and never sets ``TCP_NODELAY`` on the connections it
accepts: an answer written in two parts (head, then body) then waits for the client's delayed
ACK, about 40 ms a request. Here ``socket.fromfd`` reads the family from the descriptor itself;
everything else is uvicorn's own command line.
"""

from __future__ import annotations

import os
import socket
import sys


def _fromfd(fd: int, family: int = -1, type: int = -1, proto: int = 0) -> socket.socket:  # noqa: A002
    # socket.socket detects family, type and protocol from a descriptor when given -1.
    return socket.socket(fileno=os.dup(fd))


def main() -> None:
    socket.fromfd = _fromfd  # type: ignore[assignment]
    from uvicorn.main import main as uvicorn_main

    sys.argv[0] = "uvicorn"
    uvicorn_main()


if __name__ == "__main__":
    main()
