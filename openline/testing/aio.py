"""Async test bodies next to Playwright's sync API."""

from __future__ import annotations

import asyncio
import threading


def run_async(make_coroutine, timeout: float = 60):
    """Run an async test body on a fresh event loop in its own thread.

    Playwright's sync API leaves an event loop running in the main test thread once any
    browser test has run, so pytest-asyncio could not start one there.
    """
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make_coroutine())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError("the async test body did not finish")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
