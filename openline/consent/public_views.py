"""The public page of one consent version, reached by its unguessable link."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from openline.consent.models import AgreementVersion


def _accepted_languages(request: HttpRequest) -> list[str]:
    from django.utils.translation.trans_real import parse_accept_lang_header

    wanted = [request.GET.get("lang", "")]
    wanted += [
        code for code, _ in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", ""))
    ]
    return [w.lower() for w in wanted if w and w != "*"]


def public_version(request: HttpRequest, code: str) -> HttpResponse:
    """Show exactly one version's text to anyone with its unguessable link."""
    version = get_object_or_404(
        AgreementVersion.objects.select_related("agreement").prefetch_related("texts"),
        public_code=code,
    )
    texts = {t.language: t for t in version.texts.all()}
    chosen = None
    for wanted in _accepted_languages(request):
        chosen = texts.get(wanted) or texts.get(wanted.split("-")[0])
        if chosen:
            break
    if chosen is None:
        chosen = texts.get(version.agreement.default_language) or next(iter(texts.values()))
    response = render(
        request,
        "consent/public_version.html",
        {
            "version": version,
            "agreement": version.agreement,
            "text": chosen,
            "texts": texts.values(),
        },
    )
    response["Content-Language"] = chosen.language
    response["Vary"] = "Accept-Language"
    return response
