"""Receipt responses (JSON or printable HTML) and the public receipt check page."""

from __future__ import annotations

import base64
import functools
import hashlib
import time

from django.conf import settings
from django.core.cache import BaseCache, cache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_http_methods
from joserfc import jws

from openline.consent import receipt_check, receipts
from openline.consent.models import ConsentRecord
from openline.core.ip import request_client_ip

FORMATS = ("json", "html")
MAX_RECEIPT_BYTES = 256 * 1024
# Receipt checks per client IP per minute (cheap fixed window in the shared cache).
CHECKS_PER_MINUTE = 30


class UnknownFormat(ValueError):
    """The ``format`` query parameter names no receipt format."""


def receipt_format(request: HttpRequest) -> str:
    """Return the requested receipt format ("json" by default, or "html")."""
    value = request.GET.get("format", "json") or "json"
    if value not in FORMATS:
        raise UnknownFormat("Unknown receipt format: use format=json or format=html.")
    return value


@functools.cache
def _css() -> tuple[str, str]:
    css = render_to_string("consent/_receipt.css").strip()
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return css, f"'sha256-{digest}'"


def render_receipt_html(document: dict) -> str:
    """Render a signed receipt as a self-contained, printable HTML page (the JSON embedded)."""
    css, _ = _css()
    kid = jws.extract_compact(document["jws"].encode()).protected.get("kid", "")
    return render_to_string("consent/receipt.html", {"receipt": document, "css": css, "kid": kid})


def receipt_response(
    request: HttpRequest, record: ConsentRecord, *, fmt: str, attachment: bool
) -> HttpResponse:
    """Answer with the signed receipt of ``record`` as JSON or printable HTML."""
    document = receipts.signed_receipt(record, base_url=receipts.base_url_for(request))
    name = f"consent-receipt-{record.uuid}.{fmt}"
    if fmt == "html":
        response = HttpResponse(
            render_receipt_html(document), content_type="text/html; charset=utf-8"
        )
        # Self-contained page: its one inline style is allowed by hash, nothing else loads.
        response["Content-Security-Policy"] = (
            f"default-src 'none'; style-src {_css()[1]}; img-src data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'"
        )
    else:
        response = JsonResponse(document, json_dumps_params={"indent": 2, "ensure_ascii": False})
    disposition = "attachment" if attachment else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{name}"'
    patch_cache_control(response, no_store=True, private=True)
    return response


# ----- the public check page --------------------------------------------------------------


def _rate_limited(request: HttpRequest) -> bool:
    limit = getattr(settings, "OPENLINE_RECEIPT_CHECKS_PER_MINUTE", CHECKS_PER_MINUTE)
    window = int(time.time() // 60)
    key = f"openline:receipt-check:{request_client_ip(request) or 'unknown'}:{window}"
    try:
        count = _count(cache, key)
    except Exception:  # noqa: BLE001 - Redis down: count in this process, never answer 500
        count = _count(_fallback, key)
    return count > limit


# Counts checks while the shared cache (Redis) is unreachable.
_fallback = LocMemCache("openline-receipt-checks", {"OPTIONS": {"MAX_ENTRIES": 50_000}})


def _count(store: BaseCache, key: str) -> int:
    store.add(key, 0, timeout=120)
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr
        store.add(key, 1, timeout=120)
        return 1


def _submitted_text(request: HttpRequest) -> str:
    upload = request.FILES.get("file")
    if upload is not None and upload.size:
        if upload.size > MAX_RECEIPT_BYTES:
            raise RequestDataTooBig
        raw = upload.read(MAX_RECEIPT_BYTES + 1)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise receipt_check.ReceiptUnreadable(
                "The file is not text (UTF-8): choose the downloaded receipt file."
            ) from None
    text = request.POST.get("receipt", "")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_RECEIPT_BYTES:
        raise RequestDataTooBig
    return text


@require_http_methods(["GET", "HEAD", "POST"])
def receipt_check_page(request: HttpRequest) -> HttpResponse:
    """Let anyone upload or paste a receipt and see whether it is genuine and still holds."""
    base = receipts.base_url_for(request)
    context: dict = {
        "max_kb": MAX_RECEIPT_BYTES // 1024,
        "jwks_url": f"{base}{reverse('registry:jwks')}",
        "checkpoint_url": f"{base}{reverse('registry:checkpoint')}",
    }
    status = 200
    if request.method == "POST":
        if _rate_limited(request):
            context["error"] = "Too many checks from your address; wait a minute and try again."
            status = 429
        else:
            try:
                context["result"] = receipt_check.check_receipt(_submitted_text(request))
            except RequestDataTooBig:
                context["error"] = (
                    f"The receipt is too large: receipts are at most {MAX_RECEIPT_BYTES // 1024} KB."
                )
                status = 413
            except receipt_check.ReceiptUnreadable as exc:
                context["error"] = str(exc)
                status = 400
    response = render(request, "consent/receipt_check.html", context, status=status)
    # The result repeats what the receipt says about a person: no cache keeps it.
    patch_cache_control(response, no_store=True, private=True)
    return response
