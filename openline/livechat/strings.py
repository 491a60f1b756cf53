"""The widget's texts, translated with Django's gettext (see locale/)."""

from __future__ import annotations

from django.utils.translation import gettext as _


def widget_strings() -> dict[str, str]:
    """Return the widget's texts in the active language."""
    return {
        "title": _("Chat with us"),
        "subtitle": _("We usually reply within a few minutes."),
        "welcome": _("Hello! How can we help you?"),
        "placeholder": _("Write a message…"),
        "send": _("Send"),
        "accept": _("I accept"),
        "decline": _("I decline"),
        "gate_intro": _("Before we start, please read how we process your personal data."),
        "waiting": _("Not sent yet: waiting for your answer below."),
        "declined": _("Your message was not sent. You can't start a chat without accepting."),
        "changed": _("The consent text has changed. Please read it again."),
        "menu": _("Menu"),
        "receipt": _("Download consent receipt"),
        "receipt_html": _("Printable consent receipt"),
        "withdraw": _("Withdraw consent"),
        "withdrawn": _(
            "You withdrew your consent. This chat is closed; a new chat needs your consent again."
        ),
        "closed": _("This conversation was closed. Write again to start a new chat."),
        "typing": _("%(name)s is typing…"),
        "operator": _("Operator"),
        "sending": _("Sending…"),
        "sent": _("Sent"),
        "delivered": _("Delivered"),
        "read": _("Read"),
        "offline": _("Reconnecting…"),
        "close": _("Close chat"),
        "error": _("Something went wrong. Please try again."),
        "limited": _("You are sending messages too quickly. Wait a moment."),
        "changed_since": _("The text has changed since you last agreed."),
        "consent_text": _("Consent text"),
        "scroll_more": _("Scroll to read all"),
        "full_text": _("Read the full text"),
        "withdraw_question": _("Withdraw your consent?"),
        "withdraw_effect": _(
            "This chat will be closed. To chat again you will need to accept the text again."
        ),
        "cancel": _("Cancel"),
        "closed_now": _(
            "We are away right now. Leave a message and we will answer when we are back."
        ),
        "back_at": _("Back on %(time)s."),
        "sample_client": _("Hi! Do you ship to Austria?"),
        "sample_operator": _("Yes, we deliver to Austria within 3 working days."),
        "sample_name": _("Alex"),
    }
