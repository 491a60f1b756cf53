"""The only write path for consents, consent records and the consent audit history.

Views, consumers, webhooks, tasks and the API call these functions; nothing
else creates an ``AgreementVersion``, a ``ConsentRecord`` or an ``AuditEvent``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ParamSpec

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from openline.consent import signals
from openline.consent.integrity import text_digest
from openline.consent.models import (
    Agreement,
    AgreementText,
    AgreementVersion,
    AuditAction,
    AuditEvent,
    ConsentMethod,
    ConsentOrigin,
    ConsentRecord,
    ConsentState,
    SourceType,
)
from openline.core.sanitize import render_agreement_text, sha256_hex

P = ParamSpec("P")

LANGUAGE_MAX = 10


def _language(code: str) -> str:
    code = (code or "").strip().lower().replace("_", "-")
    if not code or len(code) > LANGUAGE_MAX or not all(part.isalnum() for part in code.split("-")):
        raise ValidationError({"language": "Enter a language code such as en, de or pt-br."})
    return code


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "get_username", lambda: str(actor))()


def audit(
    *,
    actor,
    action: str,
    agreement=None,
    channel=None,
    subject_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
) -> AuditEvent:
    """Append one event to the consent audit history."""
    event = AuditEvent(
        created_at=timezone.now(),
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor),
        action=AuditAction(action),
        agreement=agreement,
        channel=channel,
        subject_label=subject_label[:300],
        before=before,
        after=after,
    )
    event.save()
    return event


def _version_snapshot(version: AgreementVersion | None) -> dict | None:
    if version is None:
        return None
    return {
        "version": version.number,
        "allow_html": version.allow_html,
        "public_code": version.public_code,
        "texts": {t.language: t.sha256 for t in version.texts.all()},
    }


@transaction.atomic
def create_agreement(
    *, actor, name: str, text: str, allow_html: bool, language: str = "en"
) -> Agreement:
    """Create a consent with its first version."""
    language = _language(language)
    agreement = Agreement(name=name.strip(), default_language=language, created_by=actor)
    agreement.full_clean()
    agreement.save()
    version = _new_version(
        agreement=agreement, actor=actor, texts={language: text}, allow_html=allow_html
    )
    audit(
        actor=actor,
        action=AuditAction.AGREEMENT_CREATED,
        agreement=agreement,
        subject_label=agreement.name,
        after={
            "name": agreement.name,
            "default_language": language,
            **(_version_snapshot(version) or {}),
        },
    )
    return agreement


def _new_version(
    *, agreement: Agreement, actor, texts: Mapping[str, str], allow_html: bool
) -> AgreementVersion:
    last = agreement.versions.order_by("-number").first()
    version = AgreementVersion(
        agreement=agreement,
        number=(last.number + 1) if last else 1,
        allow_html=allow_html,
        created_by=actor,
    )
    version.save()
    for language, text in texts.items():
        if not text.strip():
            raise ValidationError({"text": "Enter the consent text."})
        rendered = render_agreement_text(text, allow_html=allow_html)
        AgreementText(
            version=version,
            language=language,
            text=text,
            rendered_html=rendered,
            sha256=sha256_hex(rendered),
        ).save()
    return version


def _current_texts(version: AgreementVersion | None) -> dict[str, str]:
    return {t.language: t.text for t in version.texts.all()} if version else {}


@transaction.atomic
def update_agreement(
    *,
    actor,
    agreement: Agreement,
    name: str | None = None,
    allow_html: bool | None = None,
    texts: Mapping[str, str] | None = None,
    remove_languages: tuple[str, ...] = (),
    default_language: str | None = None,
) -> AgreementVersion | None:
    """Change a consent; a new immutable version is made only when its wording changes.

    ``texts`` maps language codes to new wording (other languages keep theirs);
    returns the new version, or None when the wording did not change.
    """
    agreement = Agreement.objects.select_for_update().get(pk=agreement.pk)
    if name is not None and name.strip() != agreement.name:
        before = agreement.name
        agreement.name = name.strip()
        agreement.full_clean()
        agreement.save(update_fields=["name"])
        audit(
            actor=actor,
            action=AuditAction.AGREEMENT_RENAMED,
            agreement=agreement,
            subject_label=agreement.name,
            before={"name": before},
            after={"name": agreement.name},
        )
    current = agreement.current_version
    old_texts = _current_texts(current)
    new_texts = dict(old_texts)
    for language, text in (texts or {}).items():
        new_texts[_language(language)] = text.replace("\r\n", "\n")
    if default_language is not None:
        default_language = _language(default_language)
        if default_language not in new_texts:
            raise ValidationError({"default_language": "Add a text in this language first."})
    default = default_language or agreement.default_language
    for language in remove_languages:
        if language == default:
            raise ValidationError({"language": "The default language's text cannot be removed."})
        new_texts.pop(language, None)
    if default_language and default_language != agreement.default_language:
        agreement.default_language = default_language
        agreement.save(update_fields=["default_language"])
    new_allow = current.allow_html if (allow_html is None and current) else bool(allow_html)
    if current is not None and new_texts == old_texts and new_allow == current.allow_html:
        return None
    version = _new_version(agreement=agreement, actor=actor, texts=new_texts, allow_html=new_allow)
    audit(
        actor=actor,
        action=AuditAction.AGREEMENT_VERSION,
        agreement=agreement,
        subject_label=agreement.name,
        before=_version_snapshot(current),
        after=_version_snapshot(version),
    )
    return version


@transaction.atomic
def set_agreement_active(*, actor, agreement: Agreement, is_active: bool) -> Agreement:
    """Deactivate or reactivate a consent; consents are never deleted."""
    agreement = Agreement.objects.select_for_update().get(pk=agreement.pk)
    if agreement.is_active == is_active:
        return agreement
    if not is_active:
        # Apps that still use the consent (Open Channels sending it) refuse by raising
        # ValidationError; the registry knows none of them (see signals.py).
        signals.agreement_deactivating.send(sender=Agreement, agreement=agreement, actor=actor)
    agreement.is_active = is_active
    agreement.save(update_fields=["is_active"])
    audit(
        actor=actor,
        action=AuditAction.AGREEMENT_REACTIVATED
        if is_active
        else AuditAction.AGREEMENT_DEACTIVATED,
        agreement=agreement,
        subject_label=agreement.name,
        before={"is_active": not is_active},
        after={"is_active": is_active},
    )
    return agreement


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
    wanted = (language or "").strip().lower().replace("_", "-")
    chosen = (
        texts.get(wanted)
        or texts.get(wanted.split("-")[0])
        or texts.get(version.agreement.default_language)
    )
    if chosen is None:
        chosen = next(iter(texts.values()))
    return ShownText(
        version=version,
        language=chosen.language,
        html=chosen.rendered_html,
        # Hash what is shown, not the column: a record must prove the wording it was given.
        sha256=text_digest(chosen),
    )


def pseudonymous_label(visitor) -> str:
    """Label a visitor without personal data, so immutable records survive erasure."""
    return f"Visitor {str(visitor.public_id)[:8]}"


def consent_record(
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
    channel_settings: dict | None = None,
    conversation=None,
    evidence: dict | None = None,
    shown: ShownText | None = None,
    created_at=None,
) -> ConsentRecord:
    """Build and validate the record ``record_consent`` writes, unsaved (no query).

    The live chat's one-statement capture (``livechat/capture_pg.py``) inserts exactly this
    row; ``record_consent`` saves it through the ORM.
    """
    if channel is None and channel_settings is not None:
        raise ValueError("channel_settings describe a channel: pass the channel too.")
    if shown is None or shown.version.pk != version.pk:
        shown = text_for(version, language)
    if not ip and not ip_missing_reason:
        ip_missing_reason = "The channel does not tell the client's IP address."
    # The keys this service vouches for are assigned, never defaulted: a caller's evidence
    # (relayed from a client, say) must not be able to state them instead.
    evidence = dict(evidence or {})
    evidence.pop("channel_consent_settings", None)
    if channel_settings is not None:
        # EDPB 05/2020: the workflow in force at the time is part of the proof.
        evidence["channel_consent_settings"] = dict(channel_settings)
    evidence["requested_language"] = language or ""
    record = ConsentRecord(
        created_at=created_at or timezone.now(),
        agreement_id=version.agreement_id,
        version=version,
        language=shown.language,
        text_sha256=shown.sha256,
        state=ConsentState(state),
        method=ConsentMethod(method),
        origin=ConsentOrigin(origin),
        visitor=visitor,
        visitor_label=pseudonymous_label(visitor),
        channel=channel,
        conversation=conversation,
        source_type=SourceType(source_type),
        source_id=str(source_id),
        source_label=source_label[:300],
        address=address,
        ip=ip or None,
        ip_missing_reason="" if ip else ip_missing_reason[:200],
        user_agent=user_agent[:1000],
        evidence=evidence,
    )
    # Validated before the transaction: a refusal leaves the caller's transaction usable,
    # so the write itself needs no savepoint (two round trips fewer inside a capture).
    record.full_clean(
        exclude=["visitor", "agreement", "version", "channel", "conversation", "uuid"]
    )
    return record


def _appending(build: Callable[P, ConsentRecord]) -> Callable[P, ConsentRecord]:
    def record_consent(*args: P.args, **kwargs: P.kwargs) -> ConsentRecord:
        """Append one record to the registry; the only way a record is ever written.

        Takes ``consent_record``'s arguments. ``channel_settings`` is the channel's consent
        workflow at this moment, as the caller reads it
        (``openchannels.services.consent_settings(channel)``); it is stored only with a channel.
        ``shown`` is ``text_for(version, language)`` when the caller already picked it (the live
        chat gate did, to check the hash the client saw). Takes no lock: concurrent writers only
        insert rows, and sealing happens later.
        """
        record = build(*args, **kwargs)
        with transaction.atomic(savepoint=False):
            record.save()
            signals.record_written.send(sender=ConsentRecord, record=record)
            transaction.on_commit(_schedule_sealing)
        return record

    return record_consent


record_consent = _appending(consent_record)


def _schedule_sealing() -> None:
    from openline.consent.tasks import schedule_sealing

    schedule_sealing()


def current_state(*, visitor, agreement: Agreement) -> ConsentRecord | None:
    """Return the visitor's latest record for ``agreement`` (given or withdrawn), if any."""
    return (
        ConsentRecord.objects.filter(visitor=visitor, agreement=agreement)
        .order_by("-created_at", "-id")
        .first()
    )


def state_of(*, visitor, agreement: Agreement) -> str:
    """Answer "given", "withdrawn" or "none" for a (visitor, consent) pair."""
    latest = current_state(visitor=visitor, agreement=agreement)
    return latest.state if latest else "none"


def withdrawal_channel(*, visitor, agreement: Agreement):
    """Return the channel a withdrawal without an explicit channel is recorded on, if any."""
    latest = current_state(visitor=visitor, agreement=agreement)
    return latest.channel if latest is not None else None


def withdraw_consent(
    *,
    visitor,
    agreement: Agreement,
    origin: str,
    source_type: str,
    source_id: str = "",
    source_label: str = "",
    address: str = "",
    ip: str = "",
    ip_missing_reason: str = "",
    user_agent: str = "",
    channel=None,
    channel_settings: dict | None = None,
    conversation=None,
    evidence: dict | None = None,
    method: str = ConsentMethod.WITHDRAWN_BY_CLIENT,
) -> ConsentRecord:
    """Record that the client withdrew consent (GDPR Art. 7(3)): a new record, never an edit.

    Without ``channel`` the withdrawal names the channel of the consent it withdraws (see
    ``withdrawal_channel``); ``channel_settings`` must then describe that channel.
    """
    latest = current_state(visitor=visitor, agreement=agreement)
    if latest is None or latest.state != ConsentState.GIVEN:
        raise ValidationError("There is no given consent to withdraw.")
    return record_consent(
        visitor=visitor,
        version=latest.version,
        language=latest.language,
        state=ConsentState.WITHDRAWN,
        method=method,
        origin=origin,
        source_type=source_type,
        source_id=source_id,
        source_label=source_label,
        address=address,
        ip=ip,
        ip_missing_reason=ip_missing_reason,
        user_agent=user_agent,
        channel=channel if channel is not None else latest.channel,
        channel_settings=channel_settings,
        conversation=conversation,
        # Last, so the record withdrawn is always the one found here.
        evidence={**(evidence or {}), "withdraws_record": str(latest.uuid)},
    )


def on_channel_consent_settings_changed(sender, *, channel, actor, before, after, **kwargs) -> None:
    """Keep the Open Channel's consent settings history (Open Channels connect it)."""
    audit(
        actor=actor,
        action=AuditAction.CHANNEL_CONSENT_SETTINGS,
        channel=channel,
        subject_label=channel.name,
        agreement=channel.agreement if channel.agreement_id else None,
        before=before,
        after=after,
    )
