def url_samples(*, channel, **_) -> dict[str, dict]:
    return {
        "openchannels:connector": {"kind": "livechat"},
        "openchannels:configure_default": {"pk": channel.pk},
        "openchannels:configure": {"pk": channel.pk, "tab": "consents"},
        "openchannels:set_active": {"pk": channel.pk},
    }
