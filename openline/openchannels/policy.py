"""The consent policy of an Open Channel, in one place for every face (live chat, messengers).

Live chat: a gate before the first message (the client clicks "I accept"). Messengers: the
reference behaviour (a warning, confirmed when the client writes again) or, per channel,
explicit native buttons. Faces ask here what to show and whether consent is still needed.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from openline.consent.models import ConsentState
from openline.consent.services import ShownText, current_state, text_for
from openline.openchannels.models import DEFAULT_WITHDRAW_KEYWORDS, MessengerConsentMode

# Built-in warning wording; "{link}" is the public page of the exact version.
WARNING_TEXTS = {
    "en": "By continuing to use this chat, you consent to processing of your personal data: {link}",
    "ru": "Продолжая общение в этом чате, вы соглашаетесь на обработку персональных данных: {link}",
    "de": "Indem Sie diesen Chat weiter nutzen, willigen Sie in die Verarbeitung Ihrer personenbezogenen Daten ein: {link}",
    "fr": "En continuant à utiliser ce chat, vous consentez au traitement de vos données personnelles : {link}",
    "es": "Al seguir usando este chat, usted consiente el tratamiento de sus datos personales: {link}",
}
ACCEPT_LABELS = {
    "en": "I accept",
    "ru": "Я принимаю",
    "de": "Ich stimme zu",
    "fr": "J'accepte",
    "es": "Acepto",
}
DECLINE_LABELS = {
    "en": "I decline",
    "ru": "Я отказываюсь",
    "de": "Ich lehne ab",
    "fr": "Je refuse",
    "es": "No acepto",
}
# Translated defaults added to the channel's own keywords.
WITHDRAW_KEYWORDS_TRANSLATED = {
    "ru": ("отозвать согласие",),
    "de": ("einwilligung widerrufen",),
    "fr": ("retirer le consentement",),
    "es": ("retirar consentimiento",),
}


def consent_offer(channel, language: str | None) -> ShownText | None:
    """Return the consent text to show on this channel in ``language``, or None when no gate."""
    if not channel.consent_enabled or channel.agreement_id is None:
        return None
    version = channel.agreement.current_version
    if version is None:
        return None
    return text_for(version, language)


def offer_payload(shown: ShownText | None, *, base_url: str = "") -> dict | None:
    """Serialise a consent offer for the widget (the HTML is already sanitised).

    ``url`` is the public page of exactly this version in the language shown: absolute with
    ``base_url`` or OPENLINE_PUBLIC_URL, else a path the widget resolves on Openline's origin.
    """
    if shown is None:
        return None
    path = reverse("consent_public:version", kwargs={"code": shown.version.public_code})
    base = (base_url or getattr(settings.CONFIG, "public_url", "") or "").rstrip("/")
    return {
        "url": f"{base}{path}?lang={shown.language}",
        "version": shown.version.id,
        "number": shown.version.number,
        "language": shown.language,
        "sha256": shown.sha256,
        "html": shown.html,
        "name": shown.version.agreement.name,
    }


def needs_consent(channel, visitor) -> bool:
    """Tell whether ``visitor`` must (again) consent to the channel's current consent version."""
    if not channel.consent_enabled or channel.agreement_id is None:
        return False
    if visitor is None:
        return True
    version = channel.agreement.current_version
    latest = current_state(visitor=visitor, agreement=channel.agreement)
    return not (latest and latest.state == ConsentState.GIVEN and latest.version_id == version.id)


def messenger_mode(channel) -> str:
    """Return how messenger clients consent on this channel (MessengerConsentMode)."""
    return channel.messenger_consent_mode or MessengerConsentMode.WARNING


def _lang(language: str | None) -> str:
    return (language or "").strip().lower().replace("_", "-").split("-")[0]


def warning_text(channel, language: str | None, link: str) -> str:
    """The warning a messenger client receives, in their language unless the channel set its own."""
    template = (channel.messenger_warning_text or "").strip() or WARNING_TEXTS.get(
        _lang(language), WARNING_TEXTS["en"]
    )
    if "{link}" in template:
        return template.replace("{link}", link)
    return f"{template} {link}"


def button_labels(language: str | None) -> tuple[str, str]:
    """The "I accept" / "I decline" button titles in the client's language."""
    lang = _lang(language)
    return ACCEPT_LABELS.get(lang, ACCEPT_LABELS["en"]), DECLINE_LABELS.get(
        lang, DECLINE_LABELS["en"]
    )


def withdraw_keywords(channel, language: str | None = None) -> set[str]:
    """The whole-message keywords that withdraw consent on this channel (lower-case)."""
    configured = channel.withdraw_keywords
    if configured is None:
        configured = DEFAULT_WITHDRAW_KEYWORDS
    words = {line.strip().casefold() for line in configured.splitlines() if line.strip()}
    if words:
        words.update(w.casefold() for w in WITHDRAW_KEYWORDS_TRANSLATED.get(_lang(language), ()))
    return words


def is_withdraw_keyword(channel, text: str, language: str | None = None) -> bool:
    """Tell whether ``text`` (as a whole) asks to withdraw consent on this channel."""
    return " ".join((text or "").split()).casefold() in withdraw_keywords(channel, language)
