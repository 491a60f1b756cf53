"""Decide the request scheme from X-Forwarded-Proto only when a trusted proxy sent it.

Openline decides who a client is and whether it came over HTTPS in one place,
``openline.core.ip`` with ``OPENLINE_TRUSTED_PROXIES``. This module holds the two
pieces that make that true however the server is started:

- ``TrustedProxyMiddleware``, the outermost ASGI middleware, sets ``scope["scheme"]``
  (http/https, ws/wss) from a trusted proxy's ``X-Forwarded-Proto``; ``scope["client"]``
  stays the real peer, so ``request_client_ip``/``scope_client_ip`` walk the chain.
- ``disable_uvicorn_proxy_headers`` stops uvicorn from rewriting ``scope["client"]`` and
  ``scope["scheme"]`` itself: by default it believes X-Forwarded-For and -Proto from
  127.0.0.1 and ::1, so any local process (or a same-host reverse proxy that passes the
  client's header on) could forge the IP recorded in the consent registry.
"""

from __future__ import annotations

import logging
from typing import Any

from openline.core.ip import scope_forwarded_scheme

logger = logging.getLogger(__name__)


class TrustedProxyMiddleware:
    """Take the scheme from X-Forwarded-Proto only when the peer is a trusted proxy."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            scheme = scope_forwarded_scheme(scope)
            if scheme is not None:
                if scope["type"] == "websocket":
                    scheme = "wss" if scheme == "https" else "ws"
                scope = {**scope, "scheme": scheme}
        await self.app(scope, receive, send)


def _without_proxy_headers(app: Any, trusted_hosts: Any = None) -> Any:
    # Stands in for uvicorn's ProxyHeadersMiddleware: hands the app back unwrapped.
    return app


def disable_uvicorn_proxy_headers() -> None:
    """Make uvicorn's own X-Forwarded-* rewriting a no-op in this process.

    uvicorn's ``Config.load()`` imports the application first and only then wraps it in
    ``uvicorn.config.ProxyHeadersMiddleware`` (a module global looked up at that moment), so
    replacing the global while the application module is imported covers plain
    ``uvicorn openline.asgi:application`` with no flags, ``--workers N`` (each worker imports
    the app) and programmatic ``uvicorn.Config(...)``.
    """
    try:
        import uvicorn.config
    except ImportError:  # served by another ASGI server
        return
    if not hasattr(uvicorn.config, "ProxyHeadersMiddleware"):
        logger.warning(
            "uvicorn no longer exposes config.ProxyHeadersMiddleware; start it with "
            "--no-proxy-headers so only OPENLINE_TRUSTED_PROXIES decides client addresses."
        )
        return
    uvicorn.config.ProxyHeadersMiddleware = _without_proxy_headers  # type: ignore[misc,assignment]
