"""Console pages for a consent's versions: the list, one version, and a diff of two."""

from __future__ import annotations

import difflib

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from openline.accounts.models import Role
from openline.accounts.permissions import READ, role_required
from openline.consent.integrity import check_text, text_digest
from openline.consent.models import Agreement, AgreementVersion
from openline.core.params import is_int

AUDIT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)


@role_required(*AUDIT_ROLES, methods=READ)
def agreement_versions(request: HttpRequest, pk: int) -> HttpResponse:
    """The "Versions" tab: every wording this consent ever had."""
    agreement = get_object_or_404(Agreement, pk=pk)
    versions = (
        agreement.versions.select_related("created_by")
        .prefetch_related("texts")
        .order_by("-number")
    )
    return render(
        request,
        "consent/agreement_versions.html",
        {"agreement": agreement, "versions": versions, "section": "consents", "tab": "versions"},
    )


def _version(pk: int, number: int) -> AgreementVersion:
    return get_object_or_404(
        AgreementVersion.objects.select_related("agreement", "created_by").prefetch_related(
            "texts"
        ),
        agreement_id=pk,
        number=number,
    )


@role_required(*AUDIT_ROLES, methods=READ)
def version_detail(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Show one version exactly as clients saw it, in every language."""
    version = _version(pk, number)
    return render(
        request,
        "consent/version_detail.html",
        {
            "agreement": version.agreement,
            "version": version,
            "text_checks": [check_text(t) for t in version.texts.all()],
            "section": "consents",
            "tab": "versions",
        },
    )


def _diff_lines(old: str, new: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    for line in difflib.ndiff(old.splitlines(), new.splitlines()):
        code, text = line[:1], line[2:]
        if code == "?":
            continue
        lines.append(({"+": "add", "-": "del"}.get(code, "same"), text))
    return lines


@role_required(*AUDIT_ROLES, methods=READ)
def version_diff(request: HttpRequest, pk: int, number: int) -> HttpResponse:
    """Compare a version with an earlier one (the previous by default), language by language."""
    version = _version(pk, number)
    against_raw = request.GET.get("against", "")
    if against_raw and not is_int(against_raw, minimum=1):
        raise Http404("Unknown version")  # not a version number, so no such version
    against = _version(pk, int(against_raw) if against_raw else max(number - 1, 1))
    old = {t.language: t for t in against.texts.all()}
    new = {t.language: t for t in version.texts.all()}
    languages = sorted(set(old) | set(new))
    diffs = [
        {
            "language": lang,
            # Recomputed from the stored wording, like the record page: columns are claims.
            "old_sha": text_digest(old[lang]) if lang in old else None,
            "new_sha": text_digest(new[lang]) if lang in new else None,
            "lines": _diff_lines(
                old[lang].text if lang in old else "", new[lang].text if lang in new else ""
            ),
        }
        for lang in languages
    ]
    return render(
        request,
        "consent/version_diff.html",
        {
            "agreement": version.agreement,
            "version": version,
            "against": against,
            "diffs": diffs,
            "all_versions": version.agreement.versions.order_by("-number"),
            "section": "consents",
            "tab": "versions",
        },
    )
