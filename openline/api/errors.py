"""Error handling for the whole API: every refusal is a ``core.api_errors.Error`` body.

Ours, django-ninja's validation, authentication, CSRF and unparseable bodies all get a
machine-readable ``code`` and a human ``detail``; bodies are parsed by ``core.jsonsafe``.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.schema import OpenAPISchema
from ninja.parser import Parser

from openline.core import jsonsafe
from openline.core.api_errors import ALWAYS, CODES, ApiRefusal, Error, error_body

ERROR_REF = "#/components/schemas/Error"
DESCRIPTIONS = {
    400: "The body is not readable JSON.",
    401: "No credentials, or a token that is not valid, revoked or expired "
    "(`invalid_token`, `revoked_token`, `expired_token`, `inactive_user`).",
    403: "The role, channel or token scope may not do this (`forbidden`, `read_only_token`, "
    "`csrf_failed`, `password_change_required`).",
    404: "Not found, or not visible to the caller.",
    422: "Validation failed; `errors` names each field.",
    429: "Too many requests; the `Retry-After` header says how many seconds to wait.",
}


class SafeJsonParser(Parser):
    """Parse bodies with ``core.jsonsafe``: no NaN, NUL, lone surrogates or deep nesting."""

    def parse_body(self, request: HttpRequest) -> Any:
        return jsonsafe.loads(request.body)


def _location(error: dict[str, Any]) -> str:
    # ("body", "payload", "evidence") reads better as "evidence"; keep query/path names.
    loc = [str(part) for part in error.get("loc", ())]
    if len(loc) > 2 and loc[0] == "body":
        loc = loc[2:]
    elif len(loc) > 1:
        loc = loc[1:]
    return ".".join(loc) or "request"


def install(api: NinjaAPI) -> None:
    """Make every error the API answers an ``Error`` body."""
    # The handlers take ``Any``: django-ninja's stubs type them as taking the class as well.

    def http_error(request: HttpRequest, exc: Any) -> HttpResponse:
        cause = exc.__cause__
        if isinstance(cause, jsonsafe.UnsafeJson):
            # django-ninja wraps parser errors in "Cannot parse request body"; say why. Well-formed
            # JSON with values no database stores (NaN, NUL, lone surrogates) is a 422 like any
            # other invalid field; JSON that cannot be read at all stays a 400.
            status = 422 if cause.code in ("bad_number", "bad_text") else 400
            return api.create_response(
                request, error_body(status, cause.message, code=cause.code), status=status
            )
        return api.create_response(
            request, error_body(exc.status_code, str(exc)), status=exc.status_code
        )

    def validation_error(request: HttpRequest, exc: Any) -> HttpResponse:
        found = [dict(e) for e in exc.errors]
        for item in found:
            item.pop("ctx", None)  # may hold exception objects that are not JSON
            item.pop("input", None)  # echoes what was sent, possibly personal data
            item.pop("url", None)
        detail = "; ".join(f"{_location(e)}: {e.get('msg', 'invalid')}" for e in found)
        return api.create_response(
            request,
            error_body(422, detail or "The request is not valid.", errors=found),
            status=422,
        )

    def not_found(request: HttpRequest, exc: Any) -> HttpResponse:
        message = str(exc) if str(exc) and not str(exc).startswith("No ") else "Not found."
        return api.create_response(request, error_body(404, message), status=404)

    def refusal(request: HttpRequest, exc: Any) -> HttpResponse:
        response = api.create_response(
            request, error_body(exc.status, exc.detail, code=exc.code), status=exc.status
        )
        for name, value in exc.headers.items():
            response[name] = value
        return response

    def unauthenticated(request: HttpRequest, exc: Any) -> HttpResponse:
        detail = "Sign in, or send an API token: `Authorization: Bearer ol_...`."
        response = api.create_response(request, error_body(401, detail), status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response

    def http_or_csrf_error(request: HttpRequest, exc: Any) -> HttpResponse:
        if exc.status_code == 403 and str(exc) == "CSRF check Failed":
            detail = "The CSRF check failed: send the X-CSRFToken header with the session."
            body = error_body(403, detail, code="csrf_failed")
            return api.create_response(request, body, status=403)
        return http_error(request, exc)

    api.add_exception_handler(ApiRefusal, refusal)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(HttpError, http_or_csrf_error)
    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(Http404, not_found)


def document_statuses(schema: OpenAPISchema) -> OpenAPISchema:
    """Declare on every operation the error statuses the API can answer it with.

    401, 403 and 429 for all (authentication, role/scope/CSRF, rate limit), 422 when it takes
    parameters or a body, 400 when it takes a body, 404 when its path names a resource.
    Statuses an operation already declares keep their own description.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", Error.model_json_schema(ref_template=ERROR_REF))
    for path, methods in schema.get("paths", {}).items():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = set(ALWAYS)
            if operation.get("parameters") or operation.get("requestBody"):
                statuses.add(422)
            if operation.get("requestBody"):
                statuses.add(400)
            if "{" in path:
                statuses.add(404)
            responses = operation["responses"]
            for status in sorted(statuses):
                if str(status) in responses or status in responses:
                    continue
                responses[status] = {
                    "description": DESCRIPTIONS.get(status, CODES.get(status, "Error")),
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                }
    return schema
