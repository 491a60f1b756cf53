"""Signed visitor tokens: who a widget is, on which channel, until when.

The widget keeps the token in the iframe's localStorage on Openline's own origin
when the browser allows it. Browsers that block third-party storage (Chromium's
default) refuse that, so the loader also keeps a copy in the website's own
localStorage and hands it to the iframe by postMessage (both sides check origin
and source). Any script on that website can therefore read it: it lets that script
read this client's chat and write as them on this one channel, nothing else. The
token is signed with the secret key (django.core.signing), bound to one visitor and
one channel, and expires; every successful connection hands out a fresh one, so an
active client never sees it expire.
"""

from __future__ import annotations

import os

from django.core import signing

SALT = "openline.livechat.visitor-token"
MAX_AGE = int(os.environ.get("OPENLINE_VISITOR_TOKEN_MAX_AGE", str(90 * 24 * 3600)))


class BadToken(Exception):
    """The token is forged, expired, or for another channel."""


def make_token(*, visitor, channel) -> str:
    """Sign a token for ``visitor`` on ``channel``."""
    return signing.dumps({"v": visitor.public_id.hex, "c": channel.code}, salt=SALT, compress=False)


def read_token(token: str, *, channel_code: str | None = None, max_age: int | None = None) -> str:
    """Return the visitor's public id (hex) of a valid token, or raise BadToken."""
    if not isinstance(token, str) or not token or len(token) > 400:
        raise BadToken("missing")
    try:
        data = signing.loads(token, salt=SALT, max_age=MAX_AGE if max_age is None else max_age)
    except signing.SignatureExpired:
        raise BadToken("expired") from None
    except signing.BadSignature:
        raise BadToken("forged") from None
    if not isinstance(data, dict) or not isinstance(data.get("v"), str):
        raise BadToken("forged")
    if channel_code is not None and data.get("c") != channel_code:
        raise BadToken("wrong channel")
    return data["v"]


def bearer(request) -> str:
    """Return the token from an ``Authorization: Bearer`` header, or ""."""
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else ""
