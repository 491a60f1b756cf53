"""Websocket routes: the operator console and each face's client sockets, assembled here.

The conversation core knows no face, so the faces' consumers are put together at this top
level rather than inside ``openline.conversations``.
"""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from openline.conversations.consumers import OperatorConsumer
from openline.livechat.consumers import VisitorConsumer

websocket_urlpatterns: list = [
    # The widget authenticates with its signed token, never a session: skipping the session
    # and user middleware spares every (re)connecting widget a thread hop.
    path("ws/widget/<str:code>/", VisitorConsumer.as_asgi()),
    path("ws/console/", AuthMiddlewareStack(OperatorConsumer.as_asgi())),
]


def build_application(http_app):
    """Route HTTP to Django and websockets to the consumers, checking the Origin header."""
    return ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
        }
    )
