def url_samples(*, channel, **_) -> dict[str, dict]:
    from openline.conversations import actions

    visitor = actions.create_livechat_visitor(channel=channel, language="en", user_agent="test")
    conversation = actions.start_conversation(
        channel=channel, visitor=visitor, page_url="https://example.com/"
    )
    return {
        "conversations:conversation": {"conversation_id": conversation.pk},
        "conversations:close": {"conversation_id": conversation.pk},
        "conversations:transfer": {"conversation_id": conversation.pk},
        "conversations:livechat_settings": {"pk": channel.pk},
    }
