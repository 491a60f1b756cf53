def url_samples(*, channel, **_) -> dict[str, dict]:
    return {
        "connector_pages:settings": {"pk": channel.pk, "kind": "telegram"},
        "connector_pages:disconnect": {"pk": channel.pk, "kind": "telegram"},
    }
