"""Console test fixtures: pseudonymous live chat clients with consent records, one of them
saved to the CRM under a name the registry never stores.

Visitors, conversations and messages are created directly (test setup); consent records go
through ``record_consent`` like the live chat does, CRM items through Save to CRM.
"""

from __future__ import annotations

import pytest

from openline.conversations.models import Conversation, Message, Visitor
from openline.testing.records import accept_livechat_consent

PAGE_URL = "https://shop.example.com/pricing?plan=pro"


def make_chat(channel, *, texts=(), ip="203.0.113.7"):
    """Create an anonymous live chat visitor, one conversation, its messages and an "I accept"."""
    visitor = Visitor.objects.create(
        origin="livechat", channel=channel, language="en", user_agent="Mozilla/5.0 Chrome/130"
    )
    conversation = Conversation.objects.create(
        channel=channel, visitor=visitor, origin="livechat", page_url=PAGE_URL
    )
    for i, text in enumerate(texts):
        Message.objects.create(
            conversation=conversation, sender="visitor", text=text, client_id=f"m{i}"
        )
    accept_livechat_consent(
        visitor,
        channel,
        source_label="shop.example.com",
        address=PAGE_URL,
        ip=ip,
        user_agent=visitor.user_agent,
        conversation=conversation,
        evidence={"button": "I accept"},
    )
    return conversation


@pytest.fixture
def known_chat(channel, operator):
    """A chat whose client the operator saved to the CRM as "Jane Doe"."""
    from openline.crm import services

    chat = make_chat(channel, texts=["Hello, I'd like a quote"])
    services.save_conversation_to_crm(
        actor=operator,
        conversation=chat,
        name="Jane Doe",
        email="jane.doe@example.com",
        phone="+49 30 1234567",
    )
    return chat


@pytest.fixture
def unknown_chat(channel):
    """A chat whose client nobody saved: only a pseudonym."""
    return make_chat(channel, texts=["<b>hi</b> <script>alert(1)</script>"], ip="2001:db8::1")
