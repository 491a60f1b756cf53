def url_samples(*, channel, operator=None, **_) -> dict[str, dict]:
    from openline.conversations import actions
    from openline.conversations.models import VisitorOrigin

    visitor = actions.create_visitor(
        channel=channel, origin=VisitorOrigin.LIVECHAT, language="en", user_agent="test"
    )
    conversation = actions.start_conversation(
        channel=channel, visitor=visitor, page_url="https://example.com/"
    )
    from openline.conversations import inbound, outbox

    client = inbound.ClientRef(external_id="sample-1", name="Sample client")
    messenger = actions.start_conversation(
        channel=channel,
        visitor=inbound.get_or_create_client(channel=channel, kind="telegram", client=client),
    )
    sent = outbox.enqueue(conversation=messenger, text="Sample reply")
    samples = {}
    if operator is not None:
        from openline.conversations import canned

        reply = canned.create_canned_reply(
            actor=operator, title="Greeting", shortcut="hello", text="Hello! How can I help?"
        )
        samples = {
            "conversations:canned_edit": {"pk": reply.pk},
            "conversations:canned_delete": {"pk": reply.pk},
        }
    return samples | {
        "conversations:add_note": {"conversation_id": conversation.pk},
        "conversations:resend": {"conversation_id": messenger.pk, "message_id": sent.message_id},
        "conversations:record_withdrawal": {"conversation_id": messenger.pk},
        "conversations:conversation": {"conversation_id": conversation.pk},
        "conversations:close": {"conversation_id": conversation.pk},
        "conversations:transfer": {"conversation_id": conversation.pk},
    }
