"""Public webhook routes of the messenger connectors (no session, no CSRF: signed requests)."""

from django.urls import path

from openline.connectors import webhooks

app_name = "connectors"

urlpatterns = [
    path("<slug:kind>/<str:token>/", webhooks.webhook, name="webhook"),
]
