def url_samples(*, operator, **_) -> dict[str, dict]:
    return {
        "accounts:user_edit": {"pk": operator.pk},
        "accounts:user_reset_password": {"pk": operator.pk},
    }
