"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

``webhook-signature`` is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with
the base64-decoded part of the endpoint's ``whsec_...`` secret, so receivers verify with the
Standard Webhooks libraries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from openline.core import secrets as stored_secrets

PREFIX = "whsec_"


def new_secret() -> str:
    """Make a signing secret: ``whsec_`` and 32 random bytes in base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def seal(secret: str) -> str:
    """Encrypt a secret for storage."""
    return stored_secrets.encrypt_json({"secret": secret})


def unseal(token: str) -> str:
    """Decrypt a stored secret."""
    return str(stored_secrets.decrypt_json(token)["secret"])


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def signature(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` header value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Return the Standard Webhooks headers of one attempt."""
    return {
        "content-type": "application/json",
        "user-agent": "Openline-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            secret=secret, msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }
