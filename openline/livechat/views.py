"""Public live chat endpoints: the loader script, the iframe, starting a chat, the consent receipt.

The widget authenticates with its visitor token (``Authorization: Bearer``),
never with cookies, so these endpoints are CSRF-exempt; the start endpoint
also refuses requests whose Origin is not Openline's own (the iframe's).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Exists, OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from openline.accounts.models import Role
from openline.accounts.permissions import has_role
from openline.consent import receipt_views
from openline.consent.models import AgreementVersion, ConsentState
from openline.consent.services import current_state
from openline.conversations import actions, events
from openline.conversations.models import Visitor
from openline.core import jsonsafe
from openline.core.ip import request_client_ip
from openline.core.pageurl import clean_page_url
from openline.livechat import flows, limits, tokens
from openline.livechat.consumers import conversation_state, livechat_channel
from openline.livechat.origins import allowed_origins
from openline.livechat.strings import widget_strings
from openline.openchannels.hours import hours_state
from openline.openchannels.models import (
    DEFAULT_COLOR,
    Connector,
    ConnectorKind,
    LauncherPosition,
    OpenChannel,
)
from openline.openchannels.policy import consent_offer, offer_payload

WIDGET_LANGUAGES = ("en", "de")
MAX_BODY = 20_000
# Contract A: the widget's key for one attempt to start a chat.
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def public_origin(request: HttpRequest) -> str:
    """Return the origin the widget is served from (OPENLINE_PUBLIC_URL, else this request's)."""
    if settings.OPENLINE_PUBLIC_URL:
        parts = urlsplit(settings.OPENLINE_PUBLIC_URL)
        return f"{parts.scheme}://{parts.netloc}"
    return f"{request.scheme}://{request.get_host()}"


def widget_language(request: HttpRequest) -> str:
    """Pick the widget's language from the browser's Accept-Language."""
    for part in request.headers.get("Accept-Language", "").split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in WIDGET_LANGUAGES:
            return code
    return "en"


def _channel_or_404(code: str):
    channel = livechat_channel(code)
    if channel is None:
        raise Http404("No live chat here")
    return channel


@require_GET
def loader(request: HttpRequest, code: str) -> HttpResponse:
    """Serve the small script a website embeds: a launcher button and the chat iframe."""
    channel = livechat_channel(code)
    if channel is None:
        response = HttpResponse("/* Openline: this live chat is not available. */\n", status=404)
        response["Content-Type"] = "text/javascript; charset=utf-8"
        return response
    body = render_to_string("livechat/loader.js", loader_context(request, channel))
    response = HttpResponse(body, content_type="text/javascript; charset=utf-8")
    response["Cache-Control"] = "public, max-age=300"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@never_cache
@xframe_options_exempt
@require_GET
def frame(request: HttpRequest, code: str) -> HttpResponse:
    """Serve the chat itself, inside an iframe on the allowed websites only."""
    channel = _channel_or_404(code)
    language = widget_language(request)
    preview = request.GET.get("preview") == "1" and may_preview(request.user, channel)
    with translation.override(language):
        config = {
            "code": channel.code,
            "language": language,
            "ws": f"/ws/widget/{channel.code}/",
            "start": reverse("livechat_public:start", kwargs={"code": channel.code}),
            "receipt": reverse("livechat_public:receipt", kwargs={"code": channel.code}),
            "consent": offer_payload(
                consent_offer(channel, language), base_url=public_origin(request)
            ),
            "t": widget_strings(),
            "appearance": appearance(channel),
            "hours": hours_state(channel),
            "preview": preview,
        }
        response = render(
            request,
            "livechat/frame.html",
            {"config": config, "channel": channel, "language": language},
        )
    origins = allowed_origins(channel)
    host = request.get_host()
    ancestors = " ".join(origins) if origins else "'none'"
    if preview:
        # Only the console (the channel's Live chat page) shows the preview.
        ancestors = "'self'"
    response["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {ancestors}"
    )
    return response


def may_preview(user, channel) -> bool:
    """Tell whether ``user`` may see the channel's widget preview (its administrators, operators)."""
    if not has_role(user, Role.ADMINISTRATOR, Role.OPERATOR):
        return False
    return user.role == Role.ADMINISTRATOR or channel.operators.filter(pk=user.pk).exists()


def appearance(channel) -> dict:
    """Return how the widget looks (spec: the "appearance" dict); all plain text."""
    return {
        "title": channel.title,
        "color": channel.color if _COLOR.match(channel.color or "") else DEFAULT_COLOR,
        "greeting": channel.greeting,
        "position": "left" if channel.launcher_position == LauncherPosition.LEFT else "right",
    }


def _script_json(value) -> str:
    """Serialise ``value`` for a <script> body: no "<", ">" or "&" that could end it."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def loader_context(request: HttpRequest, channel) -> dict:
    """Return the loader template's context (spec: origin, code, colour, position, origins)."""
    look = appearance(channel)
    return {
        "origin": public_origin(request),
        "code": channel.code,
        "color": look["color"],
        "position": look["position"],
        "label": look["title"],
        "allowed_origins_json": _script_json(allowed_origins(channel)),
    }


def _json_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    return JsonResponse({"error": code, "message": message, **extra}, status=status)


def _same_origin(request: HttpRequest) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.get_host()}"


def start_channel(code: str) -> OpenChannel | None:
    """Return the active channel with an enabled live chat, and its current consent version id.

    One query (livechat_channel and the current version take three); flows.current_offer
    reads the annotated ``current_version_id`` and ``current_version_code``.
    """
    enabled = Connector.objects.filter(
        channel_id=OuterRef("pk"), kind=ConnectorKind.LIVECHAT, is_enabled=True
    )
    current = AgreementVersion.objects.filter(agreement_id=OuterRef("agreement_id")).order_by(
        "-number"
    )
    return (
        OpenChannel.objects.select_related("agreement")
        .annotate(
            current_version_id=Subquery(current.values("id")[:1]),
            current_version_code=Subquery(current.values("public_code")[:1]),
        )
        .filter(Exists(enabled), code=code, is_active=True)
        .first()
    )


@never_cache  # the answer carries the visitor's token
@csrf_exempt
@require_POST
def start(request: HttpRequest, code: str) -> JsonResponse:
    """Start a chat with the waiting first message, after the client accepted the consent."""
    channel = start_channel(code)
    if channel is None:
        return _json_error(404, "not_found", "No live chat here.")
    if not _same_origin(request):
        return _json_error(403, "bad_origin", "Start the chat from the Openline widget.")
    ip = request_client_ip(request)
    # The lean ASGI path (livechat/asgi.py) took this request's token already when it hands
    # the request on (a key of META no header can set).
    counted = request.META.get(START_COUNTED) is True
    if not counted and not limits.STARTS_PER_IP.allow(ip or "unknown"):
        return _json_error(429, "rate_limited", "Too many chats started; wait a moment.")
    if len(request.body) > MAX_BODY:
        return _json_error(
            413, "too_long", f"A message can be at most {actions.MAX_TEXT} characters."
        )
    try:
        idempotency = read_idempotency(request)
        if idempotency is not None:
            replayed = _replay(channel, idempotency)
            if replayed is not None:
                return replayed
        data = read_start_json(request)
    except BadStart as exc:
        return exc.response
    visitor = None
    token = tokens.bearer(request)
    if token:
        try:
            public_id = tokens.read_token(token, channel_code=channel.code)
        except tokens.BadToken:
            return _json_error(401, "bad_token", "Your chat session has expired.")
        visitor = Visitor.objects.filter(
            public_id=public_id, channel=channel, erased_at__isnull=True
        ).first()
        if visitor is None:
            return _json_error(401, "bad_token", "Your chat session has expired.")
    fields = start_fields(request, data)
    language = fields.language
    accepted = fields.accepted
    try:
        started = flows.livechat_start(
            channel=channel,
            visitor=visitor,
            accepted=accepted,
            page_url=fields.page_url,
            ip=ip,
            user_agent=fields.user_agent,
            language=language[:10],
            text=fields.text,
            client_id=fields.client_id,
            idempotency=idempotency,
        )
    except IntegrityError:
        # A concurrent start with the same key committed first: answer with its capture.
        replayed = _replay(channel, idempotency) if idempotency is not None else None
        if replayed is None:
            raise
        return replayed
    except actions.ActionError as exc:
        if exc.code in ("consent_required", "consent_changed"):
            return _json_error(
                409,
                exc.code,
                exc.message,
                consent=offer_payload(
                    consent_offer(channel, language), base_url=public_origin(request)
                ),
                consent_changed=flows.consent_status(channel, visitor).changed,
            )
        status = 404 if exc.code == "not_found" else 400
        return _json_error(status, exc.code, exc.message)
    return _started_response(channel, started)


# request.META key set by the lean ASGI path when it already counted the start's rate limit.
START_COUNTED = "openline.start_counted"


class BadStart(Exception):
    """A start refused on its input alone (no query): ``response`` is the answer."""

    def __init__(self, response: JsonResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def read_idempotency(request: HttpRequest) -> flows.IdempotencyKey | None:
    """Return the start's Idempotency-Key with the body's SHA-256, None without; BadStart if malformed.

    The body is at most MAX_BODY bytes here (checked before).
    """
    raw_key = request.headers.get("Idempotency-Key")
    if raw_key is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(raw_key):
        raise BadStart(
            _json_error(
                400,
                "bad_idempotency_key",
                "Idempotency-Key must be 16 to 64 letters, digits, '-' or '_'.",
            )
        )
    return flows.IdempotencyKey(key=raw_key, body_sha256=hashlib.sha256(request.body).hexdigest())


def read_start_json(request: HttpRequest) -> dict:
    """Parse the start's body (``openline.core.jsonsafe``): a JSON object, else BadStart."""
    try:
        data = jsonsafe.loads(request.body)
    except jsonsafe.UnsafeJson as exc:
        raise BadStart(_json_error(400, exc.code, exc.message)) from None
    if not isinstance(data, dict):
        raise BadStart(_json_error(400, "bad_json", "Send a JSON object."))
    return data


@dataclass(frozen=True)
class StartFields:
    """What a start asks for, read from its JSON object and headers (not checked yet)."""

    language: str
    accepted: flows.AcceptedConsent | None
    page_url: str  # cleaned
    user_agent: str
    text: Any  # checked by check_text
    client_id: Any


def start_fields(request: HttpRequest, data: dict) -> StartFields:
    """Read a start's fields as the view passes them to ``flows.livechat_start``."""
    raw_language = data.get("language")
    language = raw_language if isinstance(raw_language, str) else widget_language(request)
    raw_url = data.get("page_url")
    return StartFields(
        language=language,
        accepted=_accepted(data.get("consent")),
        page_url=clean_page_url(raw_url if isinstance(raw_url, str) else ""),
        user_agent=request.headers.get("User-Agent", ""),
        text=data.get("text") or "",
        client_id=data.get("client_id") or "",
    )


def _started_response(channel, started: flows.Started) -> JsonResponse:
    return JsonResponse(
        {
            "token": tokens.make_token(visitor=started.visitor, channel=channel),
            "visitor": started.visitor.public_id.hex,
            "conversation": conversation_state(started.conversation),
            "message": events.message_payload(started.message),
            "record": str(started.record.uuid) if started.record else None,
        },
        status=201,
    )


def _replay(channel, idempotency: flows.IdempotencyKey) -> JsonResponse | None:
    """Answer a start whose key is known again (contract A), or None for a new key."""
    try:
        started = flows.replay_start(channel=channel, idempotency=idempotency)
    except flows.IdempotencyMismatch:
        return _json_error(
            422,
            "idempotency_mismatch",
            "This Idempotency-Key was used for another request; use a new key.",
        )
    except actions.ActionError as exc:
        return _json_error(410, exc.code, exc.message)
    if started is None:
        return None
    response = _started_response(channel, started)
    response["Idempotent-Replayed"] = "true"
    return response


def _accepted(raw) -> flows.AcceptedConsent | None:
    if not isinstance(raw, dict):
        return None
    try:
        version = raw["version"]
        if isinstance(version, bool) or not isinstance(version, int):
            return None
        return flows.AcceptedConsent(
            version_id=version, language=str(raw["language"])[:10], sha256=str(raw["sha256"])[:64]
        )
    except KeyError:
        return None


@never_cache
@require_GET
def receipt(request: HttpRequest, code: str) -> HttpResponse:
    """Download the signed receipt of the client's consent, JSON or ``?format=html`` (token)."""
    channel = _channel_or_404(code)
    try:
        public_id = tokens.read_token(tokens.bearer(request), channel_code=channel.code)
    except tokens.BadToken:
        return _json_error(401, "bad_token", "Your chat session has expired.")
    visitor = Visitor.objects.filter(
        public_id=public_id, channel=channel, erased_at__isnull=True
    ).first()
    if visitor is None or channel.agreement_id is None:
        return _json_error(404, "no_consent", "There is no consent to show.")
    record = current_state(visitor=visitor, agreement=channel.agreement)
    if record is None or record.state != ConsentState.GIVEN:
        return _json_error(404, "no_consent", "There is no consent to show.")
    try:
        fmt = receipt_views.receipt_format(request)
    except receipt_views.UnknownFormat as exc:
        return _json_error(400, "bad_format", str(exc))
    return receipt_views.receipt_response(request, record, fmt=fmt, attachment=True)
