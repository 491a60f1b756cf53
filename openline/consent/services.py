"""The only write path for consents and consent records.

Views, consumers, webhooks, tasks and the API call these functions; nothing
else creates an ``AgreementVersion`` or a ``ConsentRecord``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from openline.consent.models import (
    Agreement,
    AgreementText,
    AgreementVersion,
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)
from openline.core.sanitize import render_agreement_text, sha256_hex


@transaction.atomic
def create_agreement(
    *, actor, name: str, text: str, allow_html: bool, language: str = "en"
) -> Agreement:
    """Create a consent with its first version."""
    agreement = Agreement(name=name, default_language=language, created_by=actor)
    agreement.full_clean()
    agreement.save()
    _new_version(agreement=agreement, actor=actor, texts={language: text}, allow_html=allow_html)
    return agreement


def _new_version(*, agreement: Agreement, actor, texts: dict[str, str], allow_html: bool) -> AgreementVersion:
    last = agreement.versions.order_by("-number").first()
    version = AgreementVersion.objects.create(
        agreement=agreement, number=(last.number + 1) if last else 1, allow_html=allow_html, created_by=actor
    )
    for language, text in texts.items():
        rendered = render_agreement_text(text, allow_html=allow_html)
        AgreementText.objects.create(
            version=version, language=language, text=text, rendered_html=rendered, sha256=sha256_hex(rendered)
        )
    return version


@dataclass(frozen=True)
class ShownText:
    """The exact wording a client was shown: version, language, HTML and its hash."""

    version: AgreementVersion
    language: str
    html: str
    sha256: str


def text_for(version: AgreementVersion, language: str | None) -> ShownText:
    """Pick the version's text in ``language``, falling back to the default language."""
    texts = {t.language: t for t in version.texts.all()}
    chosen = texts.get((language or "").split("-")[0].lower()) or texts.get(version.agreement.default_language)
    if chosen is None:
        chosen = next(iter(texts.values()))
    return ShownText(version=version, language=chosen.language, html=chosen.rendered_html, sha256=chosen.sha256)


@transaction.atomic
def record_consent(
    *,
    visitor,
    version: AgreementVersion,
    language: str,
    state: str,
    method: str,
    origin: str,
    source_type: str,
    source_id: str = "",
    source_label: str = "",
    address: str = "",
    ip: str = "",
    ip_missing_reason: str = "",
    user_agent: str = "",
    channel=None,
    conversation=None,
    evidence: dict | None = None,
) -> ConsentRecord:
    """Append one record to the registry; the only way a record is ever written."""
    shown = text_for(version, language)
    if not ip and not ip_missing_reason:
        ip_missing_reason = "The channel does not tell the client's IP address."
    record = ConsentRecord(
        created_at=timezone.now(),
        agreement_id=version.agreement_id,
        version=version,
        language=shown.language,
        text_sha256=shown.sha256,
        state=ConsentState(state),
        method=ConsentMethod(method),
        origin=ConsentOrigin(origin),
        visitor=visitor,
        visitor_label=str(visitor),
        channel=channel,
        conversation=conversation,
        source_type=SourceType(source_type),
        source_id=str(source_id),
        source_label=source_label[:300],
        address=address,
        ip=ip or None,
        ip_missing_reason="" if ip else ip_missing_reason,
        user_agent=user_agent[:1000],
        evidence=evidence or {},
    )
    record.save(force_insert=True)
    return record


def current_state(*, visitor, agreement: Agreement) -> ConsentRecord | None:
    """Return the visitor's latest record for ``agreement`` (given or withdrawn), if any."""
    return (
        ConsentRecord.objects.filter(visitor=visitor, agreement=agreement)
        .order_by("-created_at", "-id")
        .first()
    )
