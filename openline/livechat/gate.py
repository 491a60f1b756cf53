"""The consent gate: which consent text a live chat client must accept, and whether they must."""

from __future__ import annotations

from openline.consent.models import ConsentState
from openline.consent.services import ShownText, current_state, text_for


def consent_offer(channel, language: str | None) -> ShownText | None:
    """Return the consent text to show on this channel in ``language``, or None when no gate."""
    if not channel.consent_enabled or channel.agreement_id is None:
        return None
    version = channel.agreement.current_version
    if version is None:
        return None
    return text_for(version, language)


def offer_payload(shown: ShownText | None) -> dict | None:
    """Serialise a consent offer for the widget (the HTML is already sanitised)."""
    if shown is None:
        return None
    return {
        "version": shown.version.id,
        "number": shown.version.number,
        "language": shown.language,
        "sha256": shown.sha256,
        "html": shown.html,
        "name": shown.version.agreement.name,
    }


def needs_consent(channel, visitor) -> bool:
    """Tell whether ``visitor`` must (again) accept the channel's current consent version."""
    if not channel.consent_enabled or channel.agreement_id is None:
        return False
    if visitor is None:
        return True
    version = channel.agreement.current_version
    latest = current_state(visitor=visitor, agreement=channel.agreement)
    return not (latest and latest.state == ConsentState.GIVEN and latest.version_id == version.id)
