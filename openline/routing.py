"""Websocket routes. Each app adds its consumers to ``websocket_urlpatterns``."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator

websocket_urlpatterns: list = []

from openline.conversations.routing import websocket_urlpatterns as _conversations  # noqa: E402

websocket_urlpatterns += _conversations


def build_application(http_app):
    """Route HTTP to Django and websockets to the consumers, checking the Origin header."""
    return ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
