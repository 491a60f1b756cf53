"""Consent receipts: a signed JSON document a client or an auditor can keep and check.

Field names follow the Kantara Initiative Consent Receipt Specification v1.1
(``consentReceiptID``, ``consentTimestamp``, ``collectionMethod``,
``piiPrincipalId``, ``piiControllers``, ``policyUrl``, ``services``/``purposes``)
and ISO/IEC TS 27560:2023 consent records (``record_id``, ``notice``,
``event``, ``state``) where they fit; Openline-specific evidence sits under
``openline``.

Shape of the document served for download (``openline-receipt/1``)::

    { ...every receipt field..., "jws": "<compact JWS>" }

The ``jws`` member is a compact JWS (alg ``Ed25519``, ``typ`` ``openline-receipt+jws``, ``kid``
the RFC 7638 thumbprint of a key published at ``/registry/jwks.json``) whose payload is the
canonical JSON (sorted keys, no spaces, UTF-8) of the document without ``jws``. The chain an
outside party checks, with nothing but the JWKS and SHA-256:

1. the JWS verifies and its payload equals the rest of the document;
2. ``leaf.hash`` = SHA-256(0x00 || canonical JSON of ``leaf.record``), the record as sealed;
3. ``seal.audit_path`` leads from that leaf to ``seal.merkle_root``
   (nodes SHA-256(0x01 || left || right), as RFC 6962);
4. ``seal.checkpoint.jws`` (a registry checkpoint, signed with the same key) signs that
   batch number, batch hash and Merkle root.

Until the record is sealed (seconds) or its batch is signed, ``seal`` / ``seal.checkpoint``
say ``"status": "pending"``.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from openline.consent import signing
from openline.consent.checkpoints import checkpoint_covering
from openline.consent.integrity import check_record_text
from openline.consent.models import ConsentMethod, ConsentRecord, ConsentState, SealBatch
from openline.consent.sealing import canonical_bytes, leaf_hash, record_values, seal_proof

RECEIPT_VERSION = "KI-CR-v1.1.0"
RECEIPT_FORMAT = "openline-receipt/1"
RECEIPT_TYP = "openline-receipt+jws"
LEAF_ENCODING = "sha256(0x00 || canonical JSON of leaf.record); nodes sha256(0x01 || left || right)"

# Kantara consentType: how the consent was expressed.
_CONSENT_TYPE = {
    ConsentMethod.CLICKED_ACCEPT: "EXPLICIT",
    ConsentMethod.CONTINUED_CHATTING: "IMPLICIT",
    ConsentMethod.SAVED_TO_CRM: "EXPLICIT",
    ConsentMethod.API: "EXPLICIT",
    ConsentMethod.WITHDRAWN_BY_CLIENT: "EXPLICIT",
}


def base_url_for(request: HttpRequest) -> str:
    """Return the absolute base URL for links: OPENLINE_PUBLIC_URL, else the request's origin."""
    configured = (getattr(settings, "OPENLINE_PUBLIC_URL", "") or "").rstrip("/")
    if configured:
        return configured
    # build_absolute_uri honours X-Forwarded-Proto only through the trusted-proxy setup.
    return request.build_absolute_uri("/").rstrip("/")


def _absolute(base_url: str, path: str) -> str:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # A relative link in a receipt would point nowhere once the file leaves the server.
        raise ValueError(f"receipt links need an absolute http(s) base URL, got {base_url!r}")
    return f"{base_url.rstrip('/')}{path}"


def notice_url(record: ConsentRecord, *, base_url: str = "") -> str:
    """Return the public page that shows exactly the text of the record's version."""
    path = reverse("consent_public:version", kwargs={"code": record.version.public_code})
    path = f"{path}?lang={record.language}"
    return _absolute(base_url, path) if base_url else path


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _leaf(record: ConsentRecord) -> dict:
    row = next(record_values(ConsentRecord.objects.filter(pk=record.pk)))
    return {
        "encoding": LEAF_ENCODING,
        "record": json.loads(canonical_bytes(row)),
        "hash": leaf_hash(row).hex(),
    }


def _seal(record: ConsentRecord) -> dict:
    proof = seal_proof(record)
    if proof is None and SealBatch.objects.filter(last_record_id__gte=record.pk).exists():
        # Inside sealed history but not provably part of it: never "pending", it will not seal.
        return {
            "status": "unsealed",
            "detail": "This record is not in the seal that covers its position (refused as "
            "out of order, or the batch was damaged); registry verification names it.",
        }
    if proof is None:
        return {
            "status": "pending",
            "detail": "Records are sealed within seconds; download the receipt again later.",
        }
    checkpoint = checkpoint_covering(record.pk)
    return {
        "status": "sealed",
        **proof,
        "checkpoint": checkpoint.as_public_dict()
        if checkpoint is not None
        else {
            "status": "pending",
            "detail": "The seal batch is not signed yet; download the receipt again later.",
        },
    }


def _notice(record: ConsentRecord, url: str) -> dict:
    # Recompute the wording's hash now: a stored hash column is only a claim.
    check = check_record_text(record)
    version = record.version
    return {
        "notice_id": version.public_code,
        "url": url,
        "name": record.agreement.name,
        "version": version.number,
        "language": record.language,
        "hash": {"algorithm": "SHA-256", "value": record.text_sha256},
        "text_check": {"ok": check.ok, "message": check.message, "recomputed": check.actual},
        # The exact HTML the client was shown; withheld when it no longer matches the hash.
        "text_html": check.text.rendered_html if check.ok and check.text else None,
    }


def build_receipt(record: ConsentRecord, *, base_url: str) -> dict:
    """Build the (unsigned) receipt of one record; links are absolute under ``base_url``."""
    agreement = record.agreement
    controller = getattr(settings, "OPENLINE_CONTROLLER_NAME", "") or "Openline"
    url = notice_url(record, base_url=base_url)
    timestamp = record.created_at.astimezone(dt.UTC)
    return {
        "format": RECEIPT_FORMAT,
        "version": RECEIPT_VERSION,
        "schema": "ISO/IEC TS 27560:2023 consent record, Kantara Consent Receipt v1.1 field names",
        "consentReceiptID": str(record.uuid),
        "record_id": str(record.uuid),
        "consentTimestamp": int(timestamp.timestamp()),
        "timestamp": _utc(timestamp),
        "jurisdiction": getattr(settings, "OPENLINE_JURISDICTION", "EU"),
        "collectionMethod": record.get_method_display(),
        "collection_method_code": record.method,
        "language": record.language,
        "piiPrincipalId": str(record.visitor.public_id),
        "piiControllers": [
            {"piiController": controller, "piiControllerUrl": _absolute(base_url, "/")}
        ],
        "policyUrl": url,
        "notice": _notice(record, url),
        "services": [
            {
                "service": agreement.name,
                "purposes": [
                    {
                        "purpose": "Processing of personal data to answer the client's request",
                        "purposeCategory": ["Customer care"],
                        "consentType": _CONSENT_TYPE.get(ConsentMethod(record.method), "EXPLICIT"),
                        "piiCategory": ["Contact details", "Messages", "Network identifiers"],
                        "primaryPurpose": True,
                        "termination": "Until withdrawn by the client",
                        "thirdPartyDisclosure": False,
                    }
                ],
            }
        ],
        "sensitive": False,
        "spiCat": [],
        "state": record.state,
        "event": {
            "event_time": _utc(timestamp),
            "event_type": "withdrawal" if record.state == ConsentState.WITHDRAWN else "given",
            "event_state": record.state,
            "origin": record.origin,
        },
        "openline": {
            "source": {
                "type": record.source_type,
                "id": record.source_id,
                "label": record.source_label,
            },
            "address": record.address,
            "ip": record.ip or None,
            "ip_missing_reason": record.ip_missing_reason or None,
            "channel_id": record.channel_id,
            "conversation_id": record.conversation_id,
        },
        "leaf": _leaf(record),
        "seal": _seal(record),
        "verification": {
            # Public pages under /registry/: printed receipts keep these addresses for years.
            "jwks_url": _absolute(base_url, reverse("registry:jwks")),
            "checkpoint_url": _absolute(base_url, reverse("registry:checkpoint")),
            "check_url": _absolute(base_url, reverse("receipts:check")),
            "how": (
                "The jws member signs the canonical JSON (sorted keys, no spaces, UTF-8) of this "
                "document without jws, with the Ed25519 key of its kid in jwks_url. leaf.hash is "
                "sha256(0x00 || canonical JSON of leaf.record); seal.audit_path leads from it to "
                "seal.merkle_root, which seal.checkpoint.jws signs. Or upload this file at "
                "check_url."
            ),
        },
    }


def sign_receipt(payload: dict) -> str:
    """Sign a receipt's canonical JSON as a compact JWS with the registry key."""
    return signing.sign_jws(payload, typ=RECEIPT_TYP)


def signed_receipt(record: ConsentRecord, *, base_url: str) -> dict:
    """Build and sign the receipt of one record: its fields plus ``jws`` (see the module doc)."""
    payload = build_receipt(record, base_url=base_url)
    return {**payload, "jws": sign_receipt(payload)}
