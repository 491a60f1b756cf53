"""Error handling for the whole API: every refusal is a ``core.api_errors.Error`` body.

Ours, django-ninja's validation, authentication, CSRF and unparseable bodies all get a
machine-readable ``code`` and a human ``detail``; bodies are parsed by ``core.jsonsafe``.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser

from openline.core import jsonsafe
from openline.core.api_errors import error_body


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

    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(Http404, not_found)
