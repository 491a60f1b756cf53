"""Console context from the consent registry: the integrity alert for those who must act on it."""

from __future__ import annotations

from django.http import HttpRequest

from openline.accounts.models import Role

ALERT_ROLES = (Role.ADMINISTRATOR, Role.AUDITOR)


def registry_alert(request: HttpRequest) -> dict:
    """Expose the latest failed verification (or sealer alert) to administrators and auditors."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or getattr(user, "role", None) not in ALERT_ROLES:
        return {"registry_alert": None}
    # Only console pages pay for the query (the template asks for it lazily).
    return {"registry_alert": _LazyAlert()}


class _LazyAlert:
    def __init__(self) -> None:
        self._loaded = False
        self._run = None

    def _get(self):
        if not self._loaded:
            from openline.consent.runs import latest_alert

            self._run, self._loaded = latest_alert(), True
        return self._run

    def __bool__(self) -> bool:
        return self._get() is not None

    @property
    def run(self):
        return self._get()
