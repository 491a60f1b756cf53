"""Health endpoints for load balancers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from openline.core import readiness, unavailable

logger = logging.getLogger(__name__)


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer 200 while the process is up."""
    return JsonResponse({"status": "ok"})


async def _layer_roundtrip() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.ping"})
    await asyncio.wait_for(layer.receive(channel), timeout=2)
    # The Pub/Sub layer lets go of a channel only when a receive on it is cancelled;
    # without this every probe would leave one subscription behind.
    leftover = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    leftover.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await leftover


def _database_check() -> str:
    """ "ok", "read_only" or "full" (a write was refused lately), or raise when unreachable."""
    # Its own connection with a 2 s limit (unavailable.PROBE_SECONDS): a load balancer's
    # probe wants an answer within its own timeout, not after the pool's wait.
    if unavailable.probe_database():
        return unavailable.READ_ONLY
    return unavailable.recent_refusal() or "ok"


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Answer 200 when the database, the channel layer and every registered check work, else 503."""
    checks: dict[str, str] = {}
    try:
        checks["database"] = _database_check()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        logger.warning("readyz: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
    try:
        async_to_sync(_layer_roundtrip)()
        checks["channel_layer"] = "ok"
    except Exception as exc:  # noqa: BLE001
        logger.warning("readyz: channel layer unreachable: %s", type(exc).__name__)
        checks["channel_layer"] = "unreachable"
    for check in readiness.registered_checks():
        try:
            check.run()
            checks[check.name] = "ok"
        except Exception as exc:  # noqa: BLE001
            logger.warning(
                "readyz: %s %s: %s", check.name.replace("_", " "), check.failure, type(exc).__name__
            )
            checks[check.name] = check.failure
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status=200 if ready else 503,
    )
