"""The live chat's own rate limits, per visitor and per client IP, on top of the frame limit.

They are named, so with REDIS_URL every process counts in the same buckets (a visitor's or an
IP's allowance is the same however many processes it is spread over).

Limits can be tuned with OPENLINE_LIVECHAT_RATE_VISITOR / _IP / _START (and _FRAMES, see
``openline.conversations.limits``) as "burst/per_second" (e.g. "10/2").
"""

from __future__ import annotations

# Re-exported so the frame limit can be read (and reset by tests) next to the live chat ones.
from openline.conversations.limits import (
    FRAMES_PER_CONNECTION,
    RateLimiter,
    aallow_all,
    rate_from_env,
)

__all__ = [
    "FRAMES_PER_CONNECTION",
    "MESSAGES_PER_IP",
    "MESSAGES_PER_VISITOR",
    "STARTS_PER_IP",
    "RateLimiter",
    "aallow_all",
]

MESSAGES_PER_VISITOR = RateLimiter(
    *rate_from_env("OPENLINE_LIVECHAT_RATE_VISITOR", "6/1"), name="livechat-visitor"
)
MESSAGES_PER_IP = RateLimiter(
    *rate_from_env("OPENLINE_LIVECHAT_RATE_IP", "40/10"), name="livechat-ip"
)
STARTS_PER_IP = RateLimiter(
    *rate_from_env("OPENLINE_LIVECHAT_RATE_START", "20/1"), name="livechat-start"
)
