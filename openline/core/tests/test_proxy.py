"""The scheme and client address come from core/ip.py alone, never from uvicorn's own guess."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from openline.core.ip import forwarded_scheme, scope_client_ip
from openline.core.proxy import TrustedProxyMiddleware

PROXIES = [ipaddress.ip_network("10.0.0.0/8")]


def test_uvicorn_does_not_wrap_openline_in_its_proxy_headers_middleware():
    import uvicorn

    from openline.asgi import application

    # Even when told to trust everyone, uvicorn must hand our application the real peer.
    config = uvicorn.Config(application, proxy_headers=True, forwarded_allow_ips="*")
    config.load()
    assert config.loaded_app is application


def test_forwarded_proto_counts_only_from_a_trusted_proxy():
    assert forwarded_scheme("10.0.0.5", "https", PROXIES) == "https"
    assert forwarded_scheme("203.0.113.7", "https", PROXIES) is None
    assert forwarded_scheme(None, "https", PROXIES) is None
    assert forwarded_scheme("10.0.0.5", None, PROXIES) is None


def test_forwarded_proto_takes_the_value_our_proxy_wrote():
    # The right-most value was written by the proxy that connected to us.
    assert forwarded_scheme("10.0.0.5", "https, http", PROXIES) == "http"
    assert forwarded_scheme("10.0.0.5", "http, HTTPS ", PROXIES) == "https"
    assert forwarded_scheme("10.0.0.5", "wss", PROXIES) == "https"
    assert forwarded_scheme("10.0.0.5", "gopher", PROXIES) is None


def _scheme_seen(scope: dict) -> str:
    seen: dict = {}

    async def app(scope, receive, send):
        seen["scheme"] = scope["scheme"]

    asyncio.run(TrustedProxyMiddleware(app)(scope, None, None))
    return seen["scheme"]


def _scope(kind: str, peer: str, proto: bytes | None) -> dict:
    headers = [(b"x-forwarded-proto", proto)] if proto else []
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": (peer, 5000),
        "headers": headers,
    }


@pytest.mark.parametrize(
    ("kind", "peer", "proto", "expected"),
    [
        ("http", "10.0.0.5", b"https", "https"),
        ("http", "203.0.113.7", b"https", "http"),
        ("websocket", "10.0.0.5", b"https", "wss"),
        ("websocket", "10.0.0.5", b"wss", "wss"),
        ("websocket", "203.0.113.7", b"https", "ws"),
        ("http", "10.0.0.5", b"\xff\xfe", "http"),
        ("http", "10.0.0.5", None, "http"),
    ],
)
def test_middleware_sets_the_scheme_from_a_trusted_proxy_only(
    settings, kind, peer, proto, expected
):
    settings.OPENLINE_TRUSTED_PROXIES = PROXIES
    assert _scheme_seen(_scope(kind, peer, proto)) == expected


def test_websocket_reads_every_forwarded_for_header_like_django(settings):
    settings.OPENLINE_TRUSTED_PROXIES = PROXIES
    scope = {
        "client": ("10.0.0.5", 5000),
        # The client's proxy wrote the first line, an inner proxy added a line of its own.
        "headers": [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-for", b"10.1.1.1")],
    }
    # The same chain Django's request.META["HTTP_X_FORWARDED_FOR"] would hold.
    assert scope_client_ip(scope) == "203.0.113.7"
