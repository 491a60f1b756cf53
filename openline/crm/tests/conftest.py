"""CRM test fixtures: a live chat client who accepted the consent, and one who never did.

Visitors, conversations and messages are created directly here (test setup);
consent records go through ``record_consent`` like the live chat does.
"""

from __future__ import annotations

import pytest

from openline.conversations.models import Conversation, Message, Visitor
from openline.testing.records import accept_livechat_consent

PAGE_URL = "https://shop.example.com/pricing?plan=pro"


def make_chat(channel, *, name="", email="", phone="", origin="livechat", external_id="", texts=()):
    """Create a visitor with one conversation and its messages."""
    visitor = Visitor.objects.create(
        origin=origin,
        channel=channel,
        name=name,
        email=email,
        phone=phone,
        external_id=external_id,
        language="en",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/130",
    )
    conversation = Conversation.objects.create(
        channel=channel, visitor=visitor, origin=origin, page_url=PAGE_URL
    )
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation, sender="visitor", text=text, client_id=f"m{i}"
        )
    return conversation


def accept_consent(conversation, *, ip="203.0.113.7", address=PAGE_URL):
    """Record the client's "I accept" in the live chat, as the widget does."""
    return accept_livechat_consent(
        conversation.visitor,
        conversation.channel,
        with_settings=False,
        source_label="shop.example.com",
        address=address,
        ip=ip,
        user_agent=conversation.visitor.user_agent,
        conversation=conversation,
        evidence={"button": "I accept"},
    )


@pytest.fixture
def chat(channel):
    """Jane's live chat: she accepted the consent on the pricing page, then wrote twice."""
    conversation = make_chat(
        channel,
        name="Jane Doe",
        email="Jane.Doe@Example.com",
        phone="+49 30 1234-567",
        texts=["Hello, I'd like a quote", "My number is +49 30 1234567"],
    )
    accept_consent(conversation)
    return conversation


@pytest.fixture
def silent_chat(administrator, operator):
    """A chat in a channel without the consent warning: the client never consented."""
    from openline.openchannels.services import create_open_channel

    quiet = create_open_channel(
        actor=administrator, name="Quiet site", operators=[operator], connectors=["livechat"]
    )
    return make_chat(quiet, name="Quentin", texts=["hi"])
