"""Websocket routes of the live chat widget and the operator console."""

from django.urls import path

from openline.conversations.consumers import OperatorConsumer
from openline.livechat.consumers import VisitorConsumer

websocket_urlpatterns = [
    path("ws/widget/<str:code>/", VisitorConsumer.as_asgi()),
    path("ws/console/", OperatorConsumer.as_asgi()),
]
