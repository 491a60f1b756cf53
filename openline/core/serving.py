"""Where ``manage.py serve`` listens, the addresses it prints, and the demo website's settings.

The demo website always listens on loopback (``demo_host``), never where Openline does.

Kept free of Django imports: ``serve`` binds its sockets with these before any server starts,
and ``load_demo`` asks which origins a browser on this machine will use for the demo website.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from openline.config import ConfigError, parse_bool, parse_int

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_DEMO_PORT = 8001


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return ``host`` as an IP address ("[::1]" and "fe80::1%eth0" included), else None."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        return None


def bare_host(host: str) -> str:
    """Return ``host`` without URL brackets ("[::1]" -> "::1"), as sockets want it."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def url_host(host: str) -> str:
    """Return the host part of a URL a person can click to reach a server listening on ``host``.

    ``0.0.0.0`` (every IPv4 interface) becomes 127.0.0.1, ``::`` (every interface) [::1];
    other IPv6 literals get brackets (a zone's "%" written as "%25"); names stay as they are.
    """
    host = bare_host(host)
    if host in ("", "0.0.0.0"):  # noqa: S104
        return "127.0.0.1"
    address = _literal(host)
    if address is None:
        return host
    if address.version == 6:
        if address.is_unspecified:
            return "[::1]"
        return "[" + str(address).replace("%", "%25") + "]"
    return str(address)


def base_url(host: str, port: int) -> str:
    """Return ``http://<clickable host>:<port>`` for a server listening on ``host``."""
    return f"http://{url_host(host)}:{port}"


def loopback_hosts(host: str) -> list[str]:
    """Return the URL hosts a browser on this machine can use for a web page served on ``host``.

    Every interface or loopback: 127.0.0.1 and/or localhost; any other address or name: that
    host only. IPv6 literals are left out: browsers refuse them in a Content-Security-Policy
    (``frame-ancestors``), so a page at http://[::1]:… can never be allowed to show the chat;
    ``localhost`` reaches an IPv6 loopback listener instead.
    """
    host = bare_host(host)
    address = _literal(host)
    if host in ("", "0.0.0.0", "127.0.0.1", "::"):  # noqa: S104
        return ["127.0.0.1", "localhost"]
    if host == "localhost":
        # Bound to whichever of 127.0.0.1 and ::1 the resolver gave first: the name reaches both.
        return ["localhost", "127.0.0.1"]
    if address is not None and address.version == 6:
        return ["localhost"] if address.is_loopback else []
    return [url_host(host)]


def page_url(host: str, port: int) -> str:
    """Return the URL to open a web page served on ``host`` that embeds the chat.

    Like ``base_url``, except that an IPv6 loopback listener is reached as localhost (see
    ``loopback_hosts``) and ``::`` (IPv4 too) as 127.0.0.1.
    """
    hosts = loopback_hosts(host)
    return f"http://{hosts[0]}:{port}" if hosts else base_url(host, port)


def demo_host(host: str) -> str:
    """Return the loopback address the demo website listens on beside Openline on ``host``.

    The demo website is an unauthenticated server for this machine's browser only, wherever
    Openline listens: 127.0.0.1, or ::1 when Openline itself listens on the IPv6 loopback.
    """
    address = _literal(bare_host(host))
    if address is not None and address.version == 6 and address.is_loopback:
        return "::1"
    return "127.0.0.1"


def origins(host: str, port: int) -> list[str]:
    """Return the web origins a browser on this machine uses for a server on ``host:port``."""
    return [f"http://{name}:{port}" for name in loopback_hosts(host)]


@dataclass(frozen=True)
class Listen:
    """Where ``serve`` listens, from OPENLINE_HOST, OPENLINE_PORT and the demo website's variables."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    demo_site: bool = True
    demo_port: int = DEFAULT_DEMO_PORT


def listen_from_env(environ: Mapping[str, str] | None = None) -> Listen:
    """Read OPENLINE_HOST, OPENLINE_PORT, OPENLINE_DEMO_SITE and OPENLINE_DEMO_PORT.

    The demo website is on by default in development and off in production.
    """
    env = os.environ if environ is None else environ
    production = env.get("OPENLINE_ENV", "development").strip().lower() == "production"
    port = parse_int("OPENLINE_PORT", env.get("OPENLINE_PORT"), DEFAULT_PORT, minimum=1)
    demo_port = parse_int(
        "OPENLINE_DEMO_PORT", env.get("OPENLINE_DEMO_PORT"), DEFAULT_DEMO_PORT, minimum=1
    )
    for name, value in (("OPENLINE_PORT", port), ("OPENLINE_DEMO_PORT", demo_port)):
        if value > 65535:
            raise ConfigError(f"{name} must be a port number up to 65535, got {value}")
    return Listen(
        host=bare_host(env.get("OPENLINE_HOST") or DEFAULT_HOST),
        port=port,
        demo_site=parse_bool(
            "OPENLINE_DEMO_SITE", env.get("OPENLINE_DEMO_SITE"), default=not production
        ),
        demo_port=demo_port,
    )


class BindError(Exception):
    """The address cannot be listened on; the message says why, in one line."""


@dataclass
class Bound:
    """A listening socket and what became of the request (e.g. IPv4 and IPv6 at once)."""

    sock: socket.socket
    dual_stack: bool = False
    note: str = ""


def bind(host: str, port: int, backlog: int = 2048) -> Bound:
    """Bind and listen on ``host:port``; for ``::`` on IPv6 and IPv4 at once where allowed.

    asyncio (and so uvicorn's ``--host ::``) sets IPV6_V6ONLY, which leaves IPv4 clients out;
    binding here and handing the socket over (uvicorn ``--fd``) keeps both. Without IPv6 in the
    kernel, ``::`` falls back to every IPv4 interface.
    """
    host = bare_host(host)
    candidates: list[tuple[socket.AddressFamily, tuple]]
    if host in ("", "0.0.0.0"):  # noqa: S104
        candidates = [(socket.AF_INET, ("0.0.0.0", port))]  # noqa: S104
    elif host == "::":
        candidates = [(socket.AF_INET6, ("::", port, 0, 0))]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        candidates = [(info[0], tuple(info[4])) for info in infos]
    note = ""
    last: OSError | None = None
    for family, address in candidates:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:
            if host == "::":
                bound = bind("0.0.0.0", port, backlog)  # noqa: S104
                bound.note = "IPv6 is not available here; listening on every IPv4 interface."
                return bound
            last = exc
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            dual = False
            if family == socket.AF_INET6 and host == "::":
                try:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    dual = True
                except OSError:
                    note = "this system keeps IPv6 sockets IPv6-only; IPv4 clients cannot connect."
            sock.bind(address)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        if dual and sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
            dual = False
            note = "this system keeps IPv6 sockets IPv6-only; IPv4 clients cannot connect."
        sock.set_inheritable(True)
        return Bound(sock=sock, dual_stack=dual, note=note)
    reason = last.strerror if last is not None and last.strerror else str(last)
    raise BindError(f"cannot listen on {url_host(host)}:{port}: {reason}")


def ipv6_loopback_available() -> bool:
    """Tell whether this machine can listen on [::1] (kernels without IPv6 cannot)."""
    if not socket.has_ipv6:
        return False
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        return False
    with contextlib.closing(sock):
        try:
            sock.bind(("::1", 0))
        except OSError:
            return False
    return True
