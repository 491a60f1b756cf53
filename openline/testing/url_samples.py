"""Arguments that reach every console URL, used by the role matrix test.

Each app may define ``url_samples(**objects) -> dict`` in ``openline/<app>/url_samples.py``;
the dicts are merged here. ``objects`` holds the personas and the "Website" channel.
"""

from __future__ import annotations

import importlib

APPS = [
    "accounts",
    "openchannels",
    "consent",
    "conversations",
    "livechat",
    "crm",
    "connectors",
    "console",
    "webhooks",
]


def url_samples(**objects) -> dict[str, dict]:
    """Map console URL names to kwargs that reach an existing object."""
    samples: dict[str, dict] = {}
    for app in APPS:
        try:
            module = importlib.import_module(f"openline.{app}.url_samples")
        except ModuleNotFoundError:
            continue
        samples.update(module.url_samples(**objects))
    return samples
