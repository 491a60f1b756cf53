"""Rate limits for the API: ``OPENLINE_API_RATE`` requests per window, per token or per user.

Counters live in Django's cache (Redis when ``REDIS_URL`` is set), so every server process
shares them; fixed windows keyed by the window's index, one atomic ``incr`` per request.
A token has a bucket of its own; console sessions count per user. When the shared cache is
unreachable, requests are counted in this process instead of failing or going unlimited.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import BaseCache, cache
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)

_fallback = LocMemCache("openline-api-rate", {"OPTIONS": {"MAX_ENTRIES": 50_000}})


def _incr(store: BaseCache, key: str, timeout: int) -> int:
    # add() creates the counter only if absent, so concurrent first requests do not reset it.
    store.add(key, 0, timeout=timeout)
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr
        store.add(key, 0, timeout=timeout)
        return store.incr(key)


def hit(bucket: str, now: float | None = None) -> int | None:
    """Count one request for ``bucket``; return seconds to wait when over the limit, else None."""
    requests, window = settings.OPENLINE_API_RATE
    now = time.time() if now is None else now
    index = int(now // window)
    remaining = max(1, int((index + 1) * window - now) + 1)
    # The limit is part of the key, so changing it starts fresh counters.
    key = f"api-rate:{bucket}:{requests}/{window}:{index}"
    try:
        count = _incr(cache, key, remaining + 5)
    except Exception as exc:  # noqa: BLE001 - any cache failure: Redis down, timeout
        logger.warning("API rate limit: shared cache unreachable (%s)", type(exc).__name__)
        count = _incr(_fallback, key, remaining + 5)
    return remaining if count > requests else None
