"""Login throttling per account and per client IP, and a bound on concurrent password checks.

Counters live in Django's cache, which is Redis when ``REDIS_URL`` is set, so every server
process (and host) shares them; without Redis they are per process (local memory).
Windows are fixed: ``limit`` attempts per ``window`` seconds, keyed by the window's index,
so a counter expires on its own and a check is one atomic ``incr``.

An attempt is counted *before* the password is hashed and given back when the credentials
turn out right, so 16 parallel guesses cannot all slip past the check while the first are
still hashing, and a throttled attempt costs no hashing at all. Unknown usernames are
counted exactly like known ones (the key is the typed name, never a user id), so the
answer does not tell whether an account exists.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import BaseCache, cache
from django.core.cache.backends.locmem import LocMemCache

logger = logging.getLogger(__name__)

THROTTLED_MESSAGE = "Too many failed sign-in attempts. Try again in {minutes} minute{s}."
BUSY_MESSAGE = "The server is busy checking other sign-ins. Try again in a few seconds."


@dataclass(frozen=True)
class Limit:
    """At most ``attempts`` failed sign-ins per ``window`` seconds."""

    attempts: int
    window: int


@dataclass(frozen=True)
class Throttled:
    """A refused attempt: how long until the window that refused it ends."""

    retry_after: int

    @property
    def message(self) -> str:
        minutes = max(1, math.ceil(self.retry_after / 60))
        return THROTTLED_MESSAGE.format(minutes=minutes, s="" if minutes == 1 else "s")


def _now() -> float:
    return time.time()


def _digest(value: str) -> str:
    # Hashed so any typed name (long, spaces, control characters) makes a valid short cache key.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def account_key(username: str) -> str:
    """Name the account bucket; case and surrounding spaces do not make a fresh bucket."""
    return "acct:" + _digest(username.strip().casefold())


def ip_key(ip: str) -> str:
    """Name the client IP bucket."""
    return "ip:" + _digest(ip or "unknown")


def _slot(bucket: str, limit: Limit, now: float) -> tuple[str, int]:
    index = int(now // limit.window)
    remaining = int((index + 1) * limit.window - now) + 1
    # The limit is part of the key, so changing a limit starts fresh counters.
    key = f"login:{bucket}:{limit.attempts}/{limit.window}:{index}"
    return key, remaining


def _limits() -> list[tuple[str, Limit]]:
    return [
        ("account", Limit(*settings.OPENLINE_LOGIN_RATE_ACCOUNT)),
        ("ip", Limit(*settings.OPENLINE_LOGIN_RATE_IP)),
    ]


# When the shared cache (Redis) is unreachable, count in this process rather than answer 500
# or stop throttling: sign-in keeps working and guessing stays limited per process.
_fallback = LocMemCache("openline-login-throttle", {"OPTIONS": {"MAX_ENTRIES": 50_000}})


@dataclass
class Attempt:
    """One counted sign-in attempt; ``succeeded`` gives the counts back."""

    slots: list[tuple[str, str]]  # (kind, cache key)
    store: BaseCache

    def succeeded(self) -> None:
        """Forget this account's failures and give the IP back its attempt."""
        with _logged_errors():
            for kind, key in self.slots:
                if kind == "account":
                    # Reset on success: the owner's next typo starts from zero.
                    self.store.delete(key)
                else:
                    with contextlib.suppress(ValueError):
                        self.store.decr(key)

    def cancelled(self) -> None:
        """Give every counter back its attempt: the password was never checked."""
        with _logged_errors():
            for _kind, key in self.slots:
                with contextlib.suppress(ValueError):
                    self.store.decr(key)


@contextlib.contextmanager
def _logged_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - a lost give-back only makes the limit stricter
        logger.warning("login throttle: cache unreachable (%s)", type(exc).__name__)


def _incr(store: BaseCache, key: str, timeout: int) -> int:
    # add() creates the counter only if absent, so concurrent first attempts do not reset it.
    store.add(key, 0, timeout=timeout)
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr
        store.add(key, 0, timeout=timeout)
        return store.incr(key)


def begin_attempt(*, username: str, ip: str) -> Attempt | Throttled:
    """Count an attempt for ``username`` from ``ip``, or refuse it when a limit is reached."""
    try:
        return _count(cache, username=username, ip=ip)
    except Exception as exc:  # noqa: BLE001 - any cache failure: Redis down, timeout
        logger.warning(
            "login throttle: shared cache unreachable (%s); counting in this process",
            type(exc).__name__,
        )
        return _count(_fallback, username=username, ip=ip)


def _count(store: BaseCache, *, username: str, ip: str) -> Attempt | Throttled:
    now = _now()
    buckets = {"account": account_key(username), "ip": ip_key(ip)}
    slots: list[tuple[str, str]] = []
    refused = 0
    for kind, limit in _limits():
        key, remaining = _slot(buckets[kind], limit, now)
        # Keep the counter a little past its window so the last answer stays consistent.
        count = _incr(store, key, remaining + 5)
        slots.append((kind, key))
        if count > limit.attempts:
            refused = max(refused, remaining)
    if refused:
        return Throttled(retry_after=refused)
    return Attempt(slots=slots, store=store)


# ----- a bound on concurrent password checks in this process -----------------------------

_checks: threading.BoundedSemaphore | None = None
_checks_size = 0
_checks_lock = threading.Lock()


class Busy(Exception):
    """Raised when no password-check slot freed up in time."""


def _semaphore() -> threading.BoundedSemaphore:
    global _checks, _checks_size
    size = settings.OPENLINE_LOGIN_CONCURRENCY
    with _checks_lock:
        if _checks is None or _checks_size != size:
            _checks, _checks_size = threading.BoundedSemaphore(size), size
        return _checks


# How long a sign-in waits for a free slot before it is answered "busy".
SLOT_WAIT_SECONDS = 10.0


@contextlib.contextmanager
def password_check_slot() -> Iterator[None]:
    """Hold one of the process's password-check slots, or raise ``Busy`` after a wait.

    Each request runs in its own thread under ASGI; without this bound N parallel logins run
    N Argon2 hashes at once (each ~100 MiB and several threads), starving every other request.
    """
    semaphore = _semaphore()
    if not semaphore.acquire(timeout=SLOT_WAIT_SECONDS):
        raise Busy
    try:
        yield
    finally:
        semaphore.release()
