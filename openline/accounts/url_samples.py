def url_samples(*, operator, **_) -> dict[str, dict]:
    return {"accounts:user_edit": {"pk": operator.pk}}
