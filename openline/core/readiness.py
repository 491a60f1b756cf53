"""Readiness checks the apps add for ``/readyz`` (in their AppConfig.ready).

Core answers the probe without knowing the apps: each registers what it cannot work
without (the consent registry: its signing key), so core imports no domain app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[], object]  # raises when the thing it checks does not work
    failure: str  # the word /readyz shows when it raises: "unreachable", "unavailable", ...


_checks: dict[str, Check] = {}


def register_check(name: str, run: Callable[[], object], *, failure: str = "unavailable") -> None:
    """Add (or replace) the readiness check called ``name``; ``run`` raises when not ready."""
    _checks[name] = Check(name=name, run=run, failure=failure)


def registered_checks() -> list[Check]:
    """Return the registered checks in registration order."""
    return list(_checks.values())
