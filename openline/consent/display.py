"""Plain-text display of stored consent values, shared by the registry pages and the console.

Values stay plain text: templates escape them (nothing here builds HTML).
"""

from __future__ import annotations

import json

# Person-readable names of the Open Channel consent settings kept in evidence and history.
SETTING_LABELS = {
    "agreement_id": "Consent id",
    "agreement_name": "Consent",
    "messenger_consent_mode": "Messenger consent",
    "messenger_warning_text": "Messenger warning text",
    "withdraw_keywords": "Withdrawal keywords",
    "unconfirmed_retention_days": "Keep unconfirmed clients (days)",
}


def show(value) -> str:
    """Return a stored (JSON) value as plain text for a person."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(show(v) for v in value) if value else "(none)"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    return text if text else "(empty)"
