"""Arguments that reach every console URL, used by the role matrix test."""

from __future__ import annotations


def url_samples(*, channel, administrator, operator) -> dict[str, dict]:
    """Map console URL names to kwargs that reach an existing object."""
    agreement = channel.agreement
    return {
        "accounts:user_edit": {"pk": operator.pk},
        "openchannels:connector": {"kind": "livechat"},
        "openchannels:configure_default": {"pk": channel.pk},
        "openchannels:configure": {"pk": channel.pk, "tab": "consents"},
        "openchannels:set_active": {"pk": channel.pk},
        "consent:agreement_detail": {"pk": agreement.pk},
    }
