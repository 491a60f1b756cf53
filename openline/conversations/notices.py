"""Short notices a messenger client receives about their consent, in their language."""

from __future__ import annotations

NOTICES: dict[str, dict[str, str]] = {
    "withdrawn": {
        "en": "Your consent to processing of your personal data has been withdrawn. This conversation is closed.",
        "ru": "Ваше согласие на обработку персональных данных отозвано. Этот диалог закрыт.",
        "de": "Ihre Einwilligung in die Verarbeitung Ihrer personenbezogenen Daten wurde widerrufen. Dieses Gespräch ist beendet.",
        "fr": "Votre consentement au traitement de vos données personnelles a été retiré. Cette conversation est close.",
        "es": "Su consentimiento para el tratamiento de sus datos personales ha sido retirado. Esta conversación está cerrada.",
    },
    "nothing_to_withdraw": {
        "en": "You have not given consent to processing of your personal data, so there is nothing to withdraw.",
        "ru": "Вы не давали согласия на обработку персональных данных, отзывать нечего.",
        "de": "Sie haben keine Einwilligung in die Verarbeitung Ihrer Daten erteilt; es gibt nichts zu widerrufen.",
        "fr": "Vous n'avez pas donné de consentement au traitement de vos données : il n'y a rien à retirer.",
        "es": "No ha dado su consentimiento para el tratamiento de sus datos, así que no hay nada que retirar.",
    },
    "thanks": {
        "en": "Thank you, your consent has been recorded. How can we help you?",
        "ru": "Спасибо, ваше согласие сохранено. Чем мы можем помочь?",
        "de": "Danke, Ihre Einwilligung wurde gespeichert. Wie können wir helfen?",
        "fr": "Merci, votre consentement a été enregistré. Comment pouvons-nous vous aider ?",
        "es": "Gracias, su consentimiento ha sido registrado. ¿En qué podemos ayudarle?",
    },
    "nothing_to_decline": {
        "en": "This button belongs to an earlier notice; there is nothing to decline now.",
        "ru": "Эта кнопка относится к прежнему уведомлению; сейчас отклонять нечего.",
        "de": "Diese Schaltfläche gehört zu einem früheren Hinweis; es gibt jetzt nichts abzulehnen.",
        "fr": "Ce bouton appartient à un avis précédent : il n'y a rien à refuser maintenant.",
        "es": "Este botón pertenece a un aviso anterior; ahora no hay nada que rechazar.",
    },
    "declined": {
        "en": "Without your consent to processing of your personal data we cannot chat with you here. What you sent has been deleted.",
        "ru": "Без согласия на обработку персональных данных мы не можем общаться с вами здесь. Отправленные вами данные удалены.",
        "de": "Ohne Ihre Einwilligung in die Verarbeitung Ihrer Daten können wir hier nicht mit Ihnen chatten. Ihre Nachrichten wurden gelöscht.",
        "fr": "Sans votre consentement au traitement de vos données, nous ne pouvons pas discuter ici. Ce que vous avez envoyé a été supprimé.",
        "es": "Sin su consentimiento para el tratamiento de sus datos no podemos chatear aquí. Lo que envió ha sido eliminado.",
    },
}


def notice(key: str, language: str | None) -> str:
    """Return the notice ``key`` in ``language``, falling back to English."""
    lang = (language or "").strip().lower().replace("_", "-").split("-")[0]
    texts = NOTICES[key]
    return texts.get(lang, texts["en"])
