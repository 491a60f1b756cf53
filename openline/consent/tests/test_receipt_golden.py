"""Golden vector: a fixed key and receipt give this exact JWS, checked without Openline's code.

Ed25519 is deterministic, so a fixed key and payload always give the same signature. If this test
fails, receipts already in clients' hands would no longer match what the code produces: change
the canonical encoding, header or algorithm only with a new receipt format.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openline.consent import receipts, signing

# RFC 8032 section 7.1, test 1: the private key seed.
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
PUBLIC_X = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

PAYLOAD = {
    "format": "openline-receipt/1",
    "consentReceiptID": "7f3c1a52-0c1e-4f7a-9a53-5b1e2d7c9e10",
    "record_id": "7f3c1a52-0c1e-4f7a-9a53-5b1e2d7c9e10",
    "consentTimestamp": 1764072000,
    "timestamp": "2025-11-25T12:00:00Z",
    "language": "de",
    "state": "given",
    "notice": {
        "name": "Datenschutz – Einwilligung",
        "version": 3,
        "hash": {
            "algorithm": "SHA-256",
            "value": "6a0b3f8c2f7d5e4a1b9c0d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a",
        },
    },
    "openline": {"ip": "203.0.113.9", "ip_missing_reason": None, "conversation_id": 42},
    "sensitive": False,
    "leaf": {"hash": "00ff" * 16},
    "seal": {"status": "pending"},
}

# Sorted keys, no spaces, UTF-8 (the dash stays one character, not \\u2013).
CANONICAL = (
    '{"consentReceiptID":"7f3c1a52-0c1e-4f7a-9a53-5b1e2d7c9e10","consentTimestamp":1764072000,'
    '"format":"openline-receipt/1","language":"de","leaf":{"hash":"00ff00ff00ff00ff00ff00ff00ff00'
    'ff00ff00ff00ff00ff00ff00ff00ff00ff"},"notice":{"hash":{"algorithm":"SHA-256","value":"6a0b3f'
    '8c2f7d5e4a1b9c0d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a"},"name":"Datenschutz – Einwilligu'
    'ng","version":3},"openline":{"conversation_id":42,"ip":"203.0.113.9","ip_missing_reason":null'
    '},"record_id":"7f3c1a52-0c1e-4f7a-9a53-5b1e2d7c9e10","seal":{"status":"pending"},"sensitive"'
    ':false,"state":"given","timestamp":"2025-11-25T12:00:00Z"}'
)

EXPECTED_JWS = (
    "eyJhbGciOiJFZDI1NTE5Iiwia2lkIjoia1ByS19xbXhWV2FZVkE5d3dCRjZJdW8zdlZ6ejdUeEhDVHdYQnlnclM0ayIs"
    "InR5cCI6Im9wZW5saW5lLXJlY2VpcHQrandzIn0"
    ".eyJjb25zZW50UmVjZWlwdElEIjoiN2YzYzFhNTItMGMxZS00ZjdhLTlhNTMtNWIxZTJkN2M5ZTEwIiwiY29uc2VudF"
    "RpbWVzdGFtcCI6MTc2NDA3MjAwMCwiZm9ybWF0Ijoib3BlbmxpbmUtcmVjZWlwdC8xIiwibGFuZ3VhZ2UiOiJkZSIsIm"
    "xlYWYiOnsiaGFzaCI6IjAwZmYwMGZmMDBmZjAwZmYwMGZmMDBmZjAwZmYwMGZmMDBmZjAwZmYwMGZmMDBmZjAwZmYwMG"
    "ZmMDBmZjAwZmYifSwibm90aWNlIjp7Imhhc2giOnsiYWxnb3JpdGhtIjoiU0hBLTI1NiIsInZhbHVlIjoiNmEwYjNmOG"
    "MyZjdkNWU0YTFiOWMwZDhlN2Y2YTViNGMzZDJlMWYwYTliOGM3ZDZlNWY0YTNiMmMxZDBlOWY4YSJ9LCJuYW1lIjoiRG"
    "F0ZW5zY2h1dHog4oCTIEVpbndpbGxpZ3VuZyIsInZlcnNpb24iOjN9LCJvcGVubGluZSI6eyJjb252ZXJzYXRpb25faW"
    "QiOjQyLCJpcCI6IjIwMy4wLjExMy45IiwiaXBfbWlzc2luZ19yZWFzb24iOm51bGx9LCJyZWNvcmRfaWQiOiI3ZjNjMW"
    "E1Mi0wYzFlLTRmN2EtOWE1My01YjFlMmQ3YzllMTAiLCJzZWFsIjp7InN0YXR1cyI6InBlbmRpbmcifSwic2Vuc2l0aX"
    "ZlIjpmYWxzZSwic3RhdGUiOiJnaXZlbiIsInRpbWVzdGFtcCI6IjIwMjUtMTEtMjVUMTI6MDA6MDBaIn0"
    ".w3Rs_iBRqjUSVeLeX3bzv_ridNDuDyE9fIxjWrb_y78Xnlg0MTdKCCiEmjgiu0PUXI67ZtmuBG5Dp1ThPEwVDQ"
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.fixture
def golden_key(settings, tmp_path):
    """Write the fixed key where Openline reads its signing key."""
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    path = tmp_path / "registry-ed25519.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings.OPENLINE_SIGNING_KEY_FILE = str(path)
    return private


def test_the_golden_vector_verifies_with_the_cryptography_package_alone(golden_key):
    public = golden_key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex() == PUBLIC_X
    header_b64, payload_b64, signature_b64 = EXPECTED_JWS.split(".")
    # Raises InvalidSignature if the vector was changed.
    public.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode())
    assert json.loads(b64url_decode(header_b64)) == {
        "alg": "Ed25519",
        "kid": KID,
        "typ": "openline-receipt+jws",
    }
    assert b64url_decode(payload_b64) == CANONICAL.encode("utf-8")
    assert json.loads(CANONICAL) == PAYLOAD
    # The kid is the RFC 7638 thumbprint: SHA-256 of the required members, sorted, no spaces.
    thumbprint_input = f'{{"crv":"Ed25519","kty":"OKP","x":"{b64url(raw)}"}}'.encode()
    assert b64url(hashlib.sha256(thumbprint_input).digest()) == KID


def test_openline_signs_the_golden_payload_to_exactly_the_golden_jws(golden_key):
    assert signing.current_key().kid == KID
    assert signing.canonical_json(PAYLOAD) == CANONICAL.encode("utf-8")
    assert receipts.sign_receipt(PAYLOAD) == EXPECTED_JWS
    header, payload = signing.verify_jws(EXPECTED_JWS)
    assert header["kid"] == KID and payload == CANONICAL.encode("utf-8")
    assert signing.jwks()["keys"][0]["x"] == b64url(bytes.fromhex(PUBLIC_X))
