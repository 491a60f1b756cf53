"""Consent receipts: a JSON document a client or an auditor can keep.

Field names follow the Kantara Initiative Consent Receipt Specification v1.1
(``consentReceiptID``, ``consentTimestamp``, ``collectionMethod``,
``piiPrincipalId``, ``piiControllers``, ``policyUrl``, ``services``/``purposes``)
and ISO/IEC TS 27560:2023 consent records (``record_id``, ``notice``,
``event``, ``state``) where they fit; Openline-specific evidence sits under
``openline``.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.urls import reverse

from openline.consent.models import ConsentMethod, ConsentRecord, ConsentState
from openline.consent.sealing import seal_proof

RECEIPT_VERSION = "KI-CR-v1.1.0"

# Kantara consentType: how the consent was expressed.
_CONSENT_TYPE = {
    ConsentMethod.CLICKED_ACCEPT: "EXPLICIT",
    ConsentMethod.CONTINUED_CHATTING: "IMPLICIT",
    ConsentMethod.SAVED_TO_CRM: "EXPLICIT",
    ConsentMethod.API: "EXPLICIT",
    ConsentMethod.WITHDRAWN_BY_CLIENT: "EXPLICIT",
}


def absolute_url(path: str) -> str:
    """Prefix a path with the public base URL when one is configured."""
    base = (getattr(settings, "OPENLINE_PUBLIC_URL", "") or "").rstrip("/")
    return f"{base}{path}"


def notice_url(record: ConsentRecord) -> str:
    """Return the public page that shows exactly the text of the record's version."""
    path = reverse("consent_public:version", kwargs={"code": record.version.public_code})
    return absolute_url(f"{path}?lang={record.language}")


def build_receipt(record: ConsentRecord) -> dict:
    """Build the consent receipt of one record (seal proof included once sealed)."""
    version = record.version
    agreement = record.agreement
    controller = getattr(settings, "OPENLINE_CONTROLLER_NAME", "") or "Openline"
    url = notice_url(record)
    timestamp = record.created_at.astimezone(dt.UTC)
    proof = seal_proof(record)
    return {
        "version": RECEIPT_VERSION,
        "schema": "ISO/IEC TS 27560:2023 consent record, Kantara Consent Receipt v1.1 field names",
        "consentReceiptID": str(record.uuid),
        "record_id": str(record.uuid),
        "consentTimestamp": int(timestamp.timestamp()),
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "jurisdiction": getattr(settings, "OPENLINE_JURISDICTION", "EU"),
        "collectionMethod": record.get_method_display(),
        "collection_method_code": record.method,
        "language": record.language,
        "piiPrincipalId": str(record.visitor.public_id),
        "piiControllers": [{"piiController": controller, "piiControllerUrl": absolute_url("/")}],
        "policyUrl": url,
        "notice": {
            "notice_id": version.public_code,
            "url": url,
            "name": agreement.name,
            "version": version.number,
            "language": record.language,
            "hash": {"algorithm": "SHA-256", "value": record.text_sha256},
        },
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
            "event_time": timestamp.isoformat().replace("+00:00", "Z"),
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
        "seal": proof
        or {
            "status": "pending",
            "detail": "Records are sealed within seconds; download again later.",
        },
    }
