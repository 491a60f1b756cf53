"""Recompute the hash of the wording a client saw, instead of trusting stored hash columns.

A record stores ``text_sha256``: the SHA-256 of the exact HTML shown (``AgreementText.rendered_html``).
The text row also keeps a ``sha256`` column, but a column is only a claim: whoever can rewrite
the wording can rewrite its hash too. Every place that shows or certifies a record's wording
(record page, receipt, ``consent_verify``) recomputes the digest from the stored text here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from openline.consent.models import AgreementText, ConsentRecord

TEXT_ALTERED = (
    "The stored text does not match the hash recorded when consent was given: text altered."
)
TEXT_MISSING = "The text shown to the client is missing from the registry: text deleted or moved."
COLUMN_ALTERED = (
    "The hash column of the stored text does not match its wording: hash column altered."
)
TEXT_MATCHES = "The stored text matches the hash recorded when consent was given."
COLUMN_MATCHES = "The stored text matches its recorded hash."


@dataclass(frozen=True)
class TextCheck:
    """The outcome of recomputing a text's SHA-256: ``ok`` only when every hash agrees."""

    ok: bool
    message: str
    # The hash recorded when consent was given (or the text row's column, for a bare text).
    expected: str
    # The hash recomputed now from the stored wording ("" when the text row is missing).
    actual: str
    # The text row's own ``sha256`` column, reported so a forged column can be named.
    stored: str = ""
    text: AgreementText | None = None


def text_digest(agreement_text: AgreementText) -> str:
    """Return the hex SHA-256 recomputed from the exact HTML the client was shown."""
    return hashlib.sha256(agreement_text.rendered_html.encode("utf-8")).hexdigest()


def check_text(agreement_text: AgreementText) -> TextCheck:
    """Check a version's text against its own ``sha256`` column."""
    actual = text_digest(agreement_text)
    ok = actual == agreement_text.sha256
    return TextCheck(
        ok=ok,
        message=COLUMN_MATCHES if ok else COLUMN_ALTERED,
        expected=agreement_text.sha256,
        actual=actual,
        stored=agreement_text.sha256,
        text=agreement_text,
    )


def shown_text(record: ConsentRecord) -> AgreementText | None:
    """Return the text row a record's client was shown (its version, in its language)."""
    return AgreementText.objects.filter(
        version_id=record.version_id, language=record.language
    ).first()


def check_record_text(record: ConsentRecord, *, text: AgreementText | None = None) -> TextCheck:
    """Recompute the SHA-256 of the text a record's client saw and compare it with the record."""
    if text is None:
        text = shown_text(record)
    if text is None:
        return TextCheck(ok=False, message=TEXT_MISSING, expected=record.text_sha256, actual="")
    actual = text_digest(text)
    if actual != record.text_sha256:
        message = TEXT_ALTERED
    elif actual != text.sha256:
        # The wording is what the client saw, but the column claims otherwise: still a forgery.
        message = COLUMN_ALTERED
    else:
        message = TEXT_MATCHES
    return TextCheck(
        ok=message == TEXT_MATCHES,
        message=message,
        expected=record.text_sha256,
        actual=actual,
        stored=text.sha256,
        text=text,
    )
