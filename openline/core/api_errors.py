"""The API's error body, here so every app's router can declare it without importing ``api``.

Operations list the statuses they answer with ``errors(...)`` so the OpenAPI document
documents every one (schemathesis checks that in CI); ``openline.api.errors`` makes every
refusal use this shape.
"""

from __future__ import annotations

from typing import Any

from ninja import Field, Schema

CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    422: "invalid",
    429: "rate_limited",
}


class Error(Schema):
    """Why a request was refused."""

    code: str = Field(description="Machine-readable reason, e.g. `not_found`, `invalid`.")
    detail: str = Field(description="What went wrong, in words to show a person.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Field by field, for `invalid` requests that failed validation."
    )


def errors(*statuses: int) -> dict[int, type[Error]]:
    """Return ``response=`` entries documenting the given error statuses."""
    return dict.fromkeys(statuses, Error)


def error_body(status: int, detail: str, *, code: str | None = None, **extra: Any) -> dict:
    """Build an ``Error`` body; the code defaults to the one of the status."""
    return {"code": code or CODES.get(status, "error"), "detail": detail, **extra}


class ApiRefusal(Exception):
    """Refuse a request with an ``Error`` body of a specific ``code`` (and optional headers).

    ``openline.api.errors`` turns it into the response; use it where the default code of the
    status is not precise enough (e.g. ``expired_token``, ``read_only_token``).
    """

    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}


# The statuses any operation may answer whatever it does: no or bad credentials, a role or
# scope that may not use it, too many requests. ``document_statuses`` adds them to every
# operation; 422 is added too when the operation takes parameters or a body.
ALWAYS = (401, 403, 429)
