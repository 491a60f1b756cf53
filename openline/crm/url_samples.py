"""Objects that reach the CRM console URLs, for the role matrix test."""

from __future__ import annotations


def url_samples(*, channel, operator, **_) -> dict[str, dict]:
    from openline.conversations.models import Conversation, Visitor
    from openline.crm import services

    chat_visitor = Visitor.objects.create(origin="livechat", channel=channel, name="Sam Sample")
    chat = Conversation.objects.create(channel=channel, visitor=chat_visitor, origin="livechat")
    item = services.save_conversation_to_crm(
        actor=operator, conversation=chat, name="Sam Sample", email="sam@example.com"
    ).item
    # A Telegram client who never confirmed consent: operators may delete their data.
    tg_visitor = Visitor.objects.create(origin="telegram", channel=channel, external_id="4242")
    tg_chat = Conversation.objects.create(channel=channel, visitor=tg_visitor, origin="telegram")
    unconfirmed = services.link_messenger_client(conversation=tg_chat, name="Tess Telegram")
    return {
        "crm:save_conversation": {"conversation_id": chat.pk},
        "crm:item": {"pk": item.pk},
        "crm:item_edit": {"pk": item.pk},
        "crm:item_convert": {"pk": item.pk},
        "crm:item_note": {"pk": item.pk},
        "crm:item_export": {"pk": item.pk},
        "crm:item_delete": {"pk": unconfirmed.pk},
    }
