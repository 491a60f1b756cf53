"""The REST API (django-ninja); each app contributes a router.

Authentication (``api.auth``): a personal API token (``Authorization: Bearer ol_...``) or
the console's session with CSRF; both rate limited per token or user (``api.ratelimit``).
The OpenAPI document (``/api/v1/openapi.json``) and the interactive docs (``/api/v1/docs``)
are public: they describe the API and expose no data. The docs are rendered from
Openline's own static files (django-ninja's Swagger UI, no CDN) under the product's CSP.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI, Swagger
from ninja.openapi.schema import OpenAPISchema

from openline.api import errors
from openline.api.auth import session_auth, token_auth


class OpenlineAPI(NinjaAPI):
    """Adds the error statuses every operation can answer to the OpenAPI document."""

    def get_openapi_schema(self, **kwargs: Any) -> OpenAPISchema:
        return errors.document_statuses(super().get_openapi_schema(**kwargs))


api = OpenlineAPI(
    title="Openline API",
    version="1",
    description=(
        "Consent registry, conversations and CRM of an Openline contact center. "
        "Authenticate with a personal API token (create one in the console under "
        "Account → API tokens): `Authorization: Bearer ol_...`. Requests are rate limited "
        "per token; a refused request gets 429 and `Retry-After`. Errors are JSON with a "
        "machine-readable `code` and a human `detail`."
    ),
    auth=[token_auth, session_auth],
    urls_namespace="api",
    parser=errors.SafeJsonParser(),
    docs=Swagger(settings={"persistAuthorization": False}),
)
errors.install(api)

# Routers are added here, one line per app, e.g.:
# api.add_router("/consents/", "openline.api.consent.router")
api.add_router("/consents/", "openline.api.consent.router")
api.add_router("/crm/", "openline.crm.api.router")
api.add_router("/open-channels", "openline.api.channels.router")
api.add_router("/agreements", "openline.api.agreements.router")
api.add_router("/conversations", "openline.api.conversations.router")
api.add_router("/awaiting-consent", "openline.api.awaiting.router")
api.add_router("/webhook-endpoints", "openline.webhooks.api.router")
api.add_router("/conversation-notes", "openline.api.notes.notes_router")
api.add_router("/canned-replies", "openline.api.notes.canned_router")
api.add_router("/consent-history", "openline.api.history.router")
