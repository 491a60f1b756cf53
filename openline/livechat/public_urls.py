"""Public live chat endpoints: the widget loader and its iframe."""

from django.urls import path  # noqa: F401

app_name = "livechat_public"
urlpatterns: list = []
