"""Find the client's IP address and scheme behind configured trusted proxies only.

The address a client connected from is the peer address, unless that peer is a
proxy we trust; then we walk ``X-Forwarded-For`` from the right, skipping
trusted proxies, and take the first address that is not one. Anything a client
writes to the left of that is ignored, so it cannot forge its own IP.
``X-Forwarded-Proto`` counts on the same terms (applied by ``core/proxy.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.9:5678"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _trusted(address, proxies: Iterable[Network]) -> bool:
    return any(address in network for network in proxies)


def client_ip(peer: str | None, forwarded_for: str | None, proxies: Iterable[Network]) -> str:
    """Return the client's IP as a full string, or "" when it cannot be known."""
    proxies = list(proxies)
    address = _parse(peer) if peer else None
    if address is None:
        return ""
    if not _trusted(address, proxies) or not forwarded_for:
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        hop_address = _parse(hop)
        if hop_address is None:
            # A garbled hop means the chain cannot be trusted past this point.
            return str(address)
        address = hop_address
        if not _trusted(hop_address, proxies):
            return str(hop_address)
    return str(address)


def request_client_ip(request) -> str:
    """Return the client IP of a Django HTTP request."""
    from django.conf import settings

    return client_ip(
        request.META.get("REMOTE_ADDR"),
        request.META.get("HTTP_X_FORWARDED_FOR"),
        settings.OPENLINE_TRUSTED_PROXIES,
    )


def _scope_header(scope, name: bytes) -> str | None:
    # Repeated headers are joined with "," like Django does for request.META, so the
    # HTTP and websocket paths read the same chain.
    values = [value.decode("latin-1") for key, value in scope.get("headers", []) if key == name]
    return ",".join(values) if values else None


def _scope_peer(scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def scope_client_ip(scope) -> str:
    """Return the client IP of an ASGI scope (websocket or HTTP)."""
    from django.conf import settings

    return client_ip(
        _scope_peer(scope),
        _scope_header(scope, b"x-forwarded-for"),
        settings.OPENLINE_TRUSTED_PROXIES,
    )


def forwarded_scheme(
    peer: str | None, forwarded_proto: str | None, proxies: Iterable[Network]
) -> str | None:
    """Return "http" or "https" from X-Forwarded-Proto when the peer is a trusted proxy, else None.

    Only the right-most value counts: it was written by the proxy that connected to us, which is
    the one we trust; anything to its left came from further away.
    """
    address = _parse(peer) if peer else None
    if address is None or not forwarded_proto or not _trusted(address, list(proxies)):
        return None
    value = forwarded_proto.split(",")[-1].strip().lower()
    return {"http": "http", "ws": "http", "https": "https", "wss": "https"}.get(value)


def scope_forwarded_scheme(scope) -> str | None:
    """Return the scheme a trusted proxy reports for an ASGI scope, or None to keep the server's."""
    from django.conf import settings

    return forwarded_scheme(
        _scope_peer(scope),
        _scope_header(scope, b"x-forwarded-proto"),
        settings.OPENLINE_TRUSTED_PROXIES,
    )
