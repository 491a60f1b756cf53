"""Helpers for the receipt tests: a throwaway signing key and an independent JWS check."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection

from openline.consent import triggers


def b64url_decode(part: str) -> bytes:
    """Decode base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify_compact_jws(token: str, jwks: dict) -> tuple[dict, bytes]:
    """Verify a compact Ed25519 JWS with the cryptography package alone; return header, payload."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64url_decode(header_b64))
    assert header["alg"] == "Ed25519"
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(key["x"]))
    try:
        public.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode())
    except InvalidSignature:
        raise AssertionError("the JWS signature does not verify") from None
    return header, b64url_decode(payload_b64)


@pytest.fixture
def signing_key_file(settings, tmp_path):
    """Sign with a throwaway key in a temporary folder (rotation must not touch var/)."""
    path = tmp_path / "signing" / "registry-ed25519.pem"
    settings.OPENLINE_SIGNING_KEY_FILE = str(path)
    return path


def tamper(sql: str, params: list) -> None:
    """Play the attacker with database access: drop the triggers, run SQL, put them back."""
    triggers.drop(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        triggers.install(connection)
