"""Public (no login) consent pages: the text of a version, receipts."""

from django.urls import path  # noqa: F401

app_name = "consent_public"
urlpatterns: list = []
