"""The REST API (django-ninja); each app contributes a router."""

from __future__ import annotations

from ninja import NinjaAPI
from ninja.security import django_auth

from openline.api import errors

api = NinjaAPI(
    title="Openline API",
    version="1",
    description="Consent registry, conversations and CRM of an Openline contact center.",
    auth=django_auth,
    urls_namespace="api",
    parser=errors.SafeJsonParser(),
)
errors.install(api)

# Routers are added here, one line per app, e.g.:
# api.add_router("/consents/", "openline.api.consent.router")
api.add_router("/consents/", "openline.api.consent.router")
api.add_router("/crm/", "openline.crm.api.router")
