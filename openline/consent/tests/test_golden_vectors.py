"""Golden vectors: the exact bytes the registry hashes and signs, pinned for ever.

Old seals and checkpoints must verify years later, so their encodings can never
change silently. Each vector is written out literally here and also recomputed
independently in the test (hashlib, json, base64 and cryptography only), then
compared with what the product produces. A change to the canonical encoding of a
record leaf, a Merkle root, a batch header or a checkpoint fails these tests:
if it is intended, it needs a new format version, not new vectors.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from openline.consent import checkpoints, sealing, signing

WORDING = "<p>J’accepte le traitement de mes données.</p>"

RECORD = {
    "id": 42,
    "uuid": "3f2b8c1e-9a4d-4e7f-b6a1-0c5d2e8f9a10",
    "created_at": dt.datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=dt.UTC),
    "agreement_id": 7,
    "version_id": 9,
    "language": "fr",
    "text_sha256": hashlib.sha256(WORDING.encode()).hexdigest(),
    "state": "given",
    "method": "clicked_accept",
    "origin": "livechat",
    "visitor_id": 1234,
    "channel_id": 3,
    "conversation_id": None,
    "source_type": "website",
    "source_id": "",
    "source_label": "example.com",
    "address": "https://example.com/tarifs?x=1&y=é",
    "ip": "203.0.113.7",
    "ip_missing_reason": "",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
    "evidence": {
        "channel_consent_settings": {"consent_enabled": True, "agreement_id": 7},
        "button": "J’accepte",
    },
    # Not evidential: a display label must never change a seal.
    "visitor_label": "Visitor 1a2b3c4d",
}

RECORD_CANONICAL = (
    '{"address":"https://example.com/tarifs?x=1&y=é","agreement_id":7,"channel_id":3,'
    '"conversation_id":null,"created_at":"2025-03-14T15:09:26.535897Z","evidence":'
    '{"button":"J’accepte","channel_consent_settings":{"agreement_id":7,"consent_enabled":true}},'
    '"id":42,"ip":"203.0.113.7","ip_missing_reason":"","language":"fr","method":"clicked_accept",'
    '"origin":"livechat","source_id":"","source_label":"example.com","source_type":"website",'
    '"state":"given","text_sha256":'
    '"18e1143bc5f3343bbe20ebb3b0d48d4f5661cbda2f20876c4404df7eb574caf9",'
    '"user_agent":"Mozilla/5.0 (X11; Linux x86_64)","uuid":"3f2b8c1e-9a4d-4e7f-b6a1-0c5d2e8f9a10",'
    '"version_id":9,"visitor_id":1234}'
).encode()
RECORD_LEAF = "7936e3bef965788cbd1ec911b96c95b314afa8afcfa9ce8f13f2089699cd3813"

# Leaves i = sha256(0x00 || "leaf-i"); roots of the first 1, 2, 3 and 5 leaves.
LEAVES = [hashlib.sha256(b"\x00" + f"leaf-{i}".encode()).digest() for i in range(5)]
ROOTS = {
    1: "305df59f9590c3c9ac63d2b2743c388e3792449078cebf7fb3dbe6471643b2b7",
    2: "60a53eed0de87a90c8e59427c59c46253c33a76a09502a51801300927b7e6bdc",
    3: "cf763a041c81ceef1578a6083f75c61bef2e0014f2a3e683a97fcfca5be7f19a",
    5: "00d21829a5503145348abcf712513eacf2a274211ad83e970202bb5b6d80b286",
}
ROOT_OF_LEAVES_3_4 = "ca855a3c172d76f48f9e26312736b51fe689282e00c82594adb39cc28b57e2b5"

BATCH_1_HEADER = (
    b'{"after_record_id":0,"id_ranges":[[1,3]],"last_record_id":3,"merkle_root":'
    b'"cf763a041c81ceef1578a6083f75c61bef2e0014f2a3e683a97fcfca5be7f19a","number":1,"prev_hash":'
    b'"0000000000000000000000000000000000000000000000000000000000000000","record_count":3,'
    b'"sealed_at":"2025-03-14T15:10:00.000000Z"}'
)
BATCH_1_HASH = "08b3d0124d5fbbc935005c84689ad33626642912987d0909ea8d4db915f073d2"
BATCH_2_HEADER = (
    b'{"after_record_id":3,"id_ranges":[[4,4],[6,6]],"last_record_id":6,"merkle_root":'
    b'"ca855a3c172d76f48f9e26312736b51fe689282e00c82594adb39cc28b57e2b5","number":2,"prev_hash":'
    b'"08b3d0124d5fbbc935005c84689ad33626642912987d0909ea8d4db915f073d2","record_count":2,'
    b'"sealed_at":"2025-03-14T15:11:00.000000Z"}'
)
BATCH_2_HASH = "afeb1de8222a55a88624ed8e09ab9df16eb1f5f4b36b272fcf38a57eb3f70b5d"

# The checkpoint of batch 2, signed with the Ed25519 key whose seed is bytes 0..31.
SEED = bytes(range(32))
PUBLIC_X = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
KID = "1IG2tMH7J2wbJZnOf8LJzQitKf7LMvoAElsuDMVM54Y"
CHECKPOINT_JWS = (
    "eyJhbGciOiJFZDI1NTE5Iiwia2lkIjoiMUlHMnRNSDdKMndiSlpuT2Y4TEp6UWl0S2Y3TE12b0FFbHN1RE1WTTU0"
    "WSIsInR5cCI6Im9wZW5saW5lLWNoZWNrcG9pbnQrandzIn0"
    ".eyJiYXRjaF9oYXNoIjoiYWZlYjFkZTgyMjJhNTVhODg2MjRlZDhlMDlhYjlkZjE2ZWIxZjVmNGIzNmIyNzJmY2Yz"
    "OGE1N2ViM2Y3MGI1ZCIsImJhdGNoX251bWJlciI6MiwiZm9ybWF0Ijoib3BlbmxpbmUtY2hlY2twb2ludC8xIiwi"
    "aXNzdWVkX2F0IjoiMjAyNS0wMy0xNFQxNToxMTowMC4yNTAwMDBaIiwibGFzdF9yZWNvcmRfaWQiOjYsIm1lcmts"
    "ZV9yb290IjoiY2E4NTVhM2MxNzJkNzZmNDhmOWUyNjMxMjczNmI1MWZlNjg5MjgyZTAwYzgyNTk0YWRiMzljYzI4"
    "YjU3ZTJiNSIsInJlY29yZF9jb3VudCI6NX0"
    ".B5GujEMego7IdYzVBBnCu9go4Gn2E8P9ePXF3fANLkmIcvm9Bh4a_TO5IW956q_DC6FLF4iyyPHhEXTiEJpZCQ"
)


# ----- independent reference implementations (hashlib/json only) ---------------------------


def ref_canonical(record: dict) -> bytes:
    fields = {k: v for k, v in record.items() if k != "visitor_label"}
    fields["created_at"] = fields["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def ref_root(leaves: list[bytes]) -> bytes:
    """RFC 6962-style inner nodes (0x01 prefix); an odd node is carried up unchanged."""
    while len(leaves) > 1:
        pairs = [
            hashlib.sha256(b"\x01" + leaves[i] + leaves[i + 1]).digest()
            for i in range(0, len(leaves) - 1, 2)
        ]
        leaves = pairs + ([leaves[-1]] if len(leaves) % 2 else [])
    return leaves[0]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ref_jws(payload: dict, key: Ed25519PrivateKey, kid: str, typ: str) -> str:
    header = json.dumps({"alg": "Ed25519", "kid": kid, "typ": typ}, separators=(",", ":"))
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    signing_input = f"{b64url(header.encode())}.{b64url(body.encode())}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


# ----- record leaves -----------------------------------------------------------------------


def test_record_leaf_bytes_and_hash_are_pinned():
    assert ref_canonical(RECORD) == RECORD_CANONICAL
    assert hashlib.sha256(b"\x00" + RECORD_CANONICAL).hexdigest() == RECORD_LEAF
    assert RECORD["text_sha256"] == (
        "18e1143bc5f3343bbe20ebb3b0d48d4f5661cbda2f20876c4404df7eb574caf9"
    )
    assert sealing.canonical_bytes(RECORD) == RECORD_CANONICAL
    assert sealing.leaf_hash(RECORD).hex() == RECORD_LEAF


def test_a_record_leaf_covers_every_evidential_field():
    for name in sealing.CANONICAL_FIELDS:
        if name == "id":
            continue
        changed = dict(RECORD)
        if name == "created_at":
            changed[name] = RECORD[name] + dt.timedelta(microseconds=1)
        elif name == "evidence":
            changed[name] = {**RECORD[name], "button": "OK"}
        else:
            changed[name] = "changed"
        assert sealing.leaf_hash(changed).hex() != RECORD_LEAF, name
    assert sealing.leaf_hash({**RECORD, "visitor_label": "Vera"}).hex() == RECORD_LEAF


def test_the_database_s_raw_json_evidence_hashes_like_decoded_json():
    raw = {**RECORD, "evidence": json.dumps(RECORD["evidence"])}
    assert sealing.leaf_hash(raw).hex() == RECORD_LEAF


# ----- Merkle roots ------------------------------------------------------------------------


@pytest.mark.parametrize("count", sorted(ROOTS))
def test_merkle_roots_are_pinned(count):
    assert ref_root(LEAVES[:count]).hex() == ROOTS[count]
    assert sealing.merkle_root(LEAVES[:count]).hex() == ROOTS[count]


def test_merkle_audit_paths_lead_to_the_pinned_root():
    for index in range(5):
        path = sealing.merkle_proof(LEAVES, index)
        assert sealing.verify_proof(LEAVES[index], path, ROOTS[5])
        # Recompute the path independently too.
        current = LEAVES[index]
        for step in path:
            other = bytes.fromhex(step["hash"])
            pair = other + current if step["side"] == "left" else current + other
            current = hashlib.sha256(b"\x01" + pair).digest()
        assert current.hex() == ROOTS[5]


# ----- the chain of batches ----------------------------------------------------------------


def test_the_batch_header_chain_is_pinned():
    assert ref_root(LEAVES[3:5]).hex() == ROOT_OF_LEAVES_3_4
    assert hashlib.sha256(BATCH_1_HEADER).hexdigest() == BATCH_1_HASH
    assert hashlib.sha256(BATCH_2_HEADER).hexdigest() == BATCH_2_HASH
    assert json.loads(BATCH_2_HEADER)["prev_hash"] == BATCH_1_HASH
    first = sealing.batch_header(
        number=1,
        sealed_at=dt.datetime(2025, 3, 14, 15, 10, tzinfo=dt.UTC),
        prev_last_id=0,
        last_record_id=3,
        record_count=3,
        id_ranges=[[1, 3]],
        merkle_root_hex=ROOTS[3],
        prev_hash=sealing.GENESIS,
    )
    second = sealing.batch_header(
        number=2,
        sealed_at=dt.datetime(2025, 3, 14, 15, 11, tzinfo=dt.UTC),
        prev_last_id=3,
        last_record_id=6,
        record_count=2,
        id_ranges=[[4, 4], [6, 6]],
        merkle_root_hex=ROOT_OF_LEAVES_3_4,
        prev_hash=hashlib.sha256(first).hexdigest(),
    )
    assert (first, second) == (BATCH_1_HEADER, BATCH_2_HEADER)


# ----- checkpoint signatures ---------------------------------------------------------------


@pytest.fixture
def fixed_key(tmp_path, settings):
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    path = tmp_path / "registry-ed25519.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings.OPENLINE_SIGNING_KEY_FILE = str(path)
    signing._current_cached.cache_clear()
    yield key
    signing._current_cached.cache_clear()


CHECKPOINT = {
    "batch_number": 2,
    "batch_hash": BATCH_2_HASH,
    "merkle_root": ROOT_OF_LEAVES_3_4,
    "record_count": 5,
    "last_record_id": 6,
    "issued_at": dt.datetime(2025, 3, 14, 15, 11, 0, 250000, tzinfo=dt.UTC),
}


def test_the_key_id_is_the_rfc7638_thumbprint(fixed_key):
    raw = fixed_key.public_key().public_bytes_raw()
    assert b64url(raw) == PUBLIC_X
    members = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": PUBLIC_X}, separators=(",", ":"))
    assert b64url(hashlib.sha256(members.encode()).digest()) == KID
    assert signing.current_key().kid == KID
    assert signing.jwks() == {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": PUBLIC_X,
                "kid": KID,
                "alg": "Ed25519",
                "use": "sig",
            }
        ]
    }


def test_the_checkpoint_signature_is_pinned(fixed_key):
    payload = {
        "format": "openline-checkpoint/1",
        **CHECKPOINT,
        "issued_at": "2025-03-14T15:11:00.250000Z",
    }
    assert ref_jws(payload, fixed_key, KID, "openline-checkpoint+jws") == CHECKPOINT_JWS
    produced = signing.sign_jws(
        checkpoints.checkpoint_payload(**CHECKPOINT), typ=checkpoints.CHECKPOINT_TYP
    )
    assert produced == CHECKPOINT_JWS


def test_the_pinned_checkpoint_verifies_and_a_changed_one_does_not(fixed_key):
    verified = checkpoints.read_checkpoint(CHECKPOINT_JWS)
    assert (verified.batch_number, verified.batch_hash, verified.record_count) == (
        2,
        BATCH_2_HASH,
        5,
    )
    assert verified.kid == KID
    # With only the published key (an outside party's pinned JWKS) as well.
    pinned = {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": PUBLIC_X}]}
    assert checkpoints.read_checkpoint(CHECKPOINT_JWS, key_set=pinned).last_record_id == 6
    header, payload, signature = CHECKPOINT_JWS.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    with pytest.raises(checkpoints.CheckpointError):
        checkpoints.read_checkpoint(f"{header}.{payload}.{flipped}")
