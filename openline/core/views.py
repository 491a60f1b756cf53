"""Health endpoints for load balancers."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from openline.core import readiness

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


# A load balancer's probe wants an answer within its own timeout (often 2-5 s); a down
# database must show as 503 by then, not after the connection pool's 10 s wait.
PROBE_SECONDS = 2


def _probe_database() -> None:
    """Run ``SELECT 1``, failing within about PROBE_SECONDS when the database does not answer."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return
    import psycopg

    # A connection of its own, not one from the pool: the pool waits its full timeout for a
    # database that is down, and a busy pool is not a database that is down.
    params = connection.get_connection_params()
    params["connect_timeout"] = PROBE_SECONDS
    with psycopg.connect(**params) as probe:
        probe.execute(f"SET statement_timeout = {PROBE_SECONDS * 1000}")
        probe.execute("SELECT 1").fetchone()


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Answer 200 when the database, the channel layer and every registered check work, else 503."""
    checks: dict[str, str] = {}
    try:
        _probe_database()
        checks["database"] = "ok"
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
