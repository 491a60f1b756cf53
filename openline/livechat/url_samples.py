def url_samples(*, channel, **_) -> dict[str, dict]:
    return {"conversations:livechat_settings": {"pk": channel.pk}}
