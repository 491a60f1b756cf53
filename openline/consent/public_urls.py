"""Public (no login) consent pages: the exact text of a version."""

from django.urls import path

from openline.consent import public_views

app_name = "consent_public"
urlpatterns = [
    path("<str:code>/", public_views.public_version, name="version"),
]
