"""Check a consent receipt somebody kept: is it genuine, and is its record still in the registry?

The public receipt-check page hands the uploaded or pasted text to ``check_receipt``. Each step
is reported on its own so a reader sees exactly what holds and what does not:

1. signature: the JWS verifies with a published key (current or retired) and is a receipt;
2. content: the readable fields are exactly what was signed;
   (for the HTML form: its visible text shows exactly the signed facts, see receipt_visible);
3. record: the record still exists and recomputes to the leaf hash the receipt was issued with;
4. seal: the audit path leads from that leaf to the Merkle root, and the batch still holds it;
5. checkpoint: the checkpoint it carries is genuine, signs that root, and the registry still
   holds everything that checkpoint covered;
6. wording: the stored text still hashes to what the client was shown.

The registry is consulted only once the signature verified, so forged input learns nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

from openline.consent import checkpoints, signing
from openline.consent.integrity import check_record_text
from openline.consent.models import ConsentRecord
from openline.consent.receipt_visible import signed_facts, visible_differences
from openline.consent.receipts import RECEIPT_TYP
from openline.consent.sealing import (
    canonical_bytes,
    leaf_hash,
    record_values,
    seal_proof,
    verify_proof,
)
from openline.core import jsonsafe

_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
_EMBEDDED = re.compile(
    r"<script[^>]*\bid=\"openline-receipt\"[^>]*>(.*?)</script>", re.IGNORECASE | re.DOTALL
)

OK, FAILED, PENDING = "ok", "failed", "pending"


class ReceiptUnreadable(Exception):
    """The input is not a receipt at all (not JSON, no JWS, wrong shape)."""


@dataclass
class Step:
    name: str
    status: str  # ok | failed | pending
    message: str


@dataclass
class ReceiptCheck:
    """The outcome of checking one receipt: a verdict and every step behind it."""

    steps: list[Step] = field(default_factory=list)
    record_id: str = ""
    kid: str = ""
    key_status: str = ""  # current | retired
    # What the signed payload states (label, value): the only facts this check vouches for.
    facts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def genuine(self) -> bool:
        """Tell whether the signature and the signed content hold."""
        return all(
            s.status == OK for s in self.steps if s.name in ("signature", "content", "visible")
        )

    @property
    def ok(self) -> bool:
        """Tell whether nothing failed (pending steps are not failures)."""
        return bool(self.steps) and all(s.status != FAILED for s in self.steps)

    @property
    def verdict(self) -> str:
        """Summarise the check in one sentence."""
        if not self.genuine:
            return "Not genuine: this receipt was not issued by this registry as it stands."
        if self.ok:
            return "Genuine, and the record is still in the registry unchanged."
        return "Genuine receipt, but the registry no longer matches it."

    def add(self, name: str, status: str, message: str) -> None:
        self.steps.append(Step(name, status, message))


def parse_receipt(text: str) -> tuple[dict | None, str]:
    """Return (document or None, compact JWS) from JSON, a bare JWS, or a receipt's HTML form."""
    text = text.strip().lstrip("\ufeff")
    if not text:
        raise ReceiptUnreadable("Paste a receipt or choose a receipt file.")
    embedded = _EMBEDDED.search(text)
    if embedded:
        text = embedded.group(1).strip()
    elif text.startswith("<"):
        raise ReceiptUnreadable(
            "This page holds no Openline receipt (look for the downloaded .json or .html file)."
        )
    if _COMPACT_JWS.match(text):
        return None, text
    try:
        # Depth-limited: a deeply nested paste is refused before Python's parser recurses.
        document = jsonsafe.loads(text, max_depth=64)
    except jsonsafe.UnsafeJson:
        raise ReceiptUnreadable(
            "This is neither JSON nor a signed receipt (JWS); was the file cut short?"
        ) from None
    if not isinstance(document, dict):
        raise ReceiptUnreadable("A receipt is a JSON object; this is not one.")
    token = document.get("jws")
    if not isinstance(token, str) or not _COMPACT_JWS.match(token.strip()):
        raise ReceiptUnreadable(
            'This JSON carries no signature (a "jws" member): it is not a signed receipt. '
            "Download the receipt again to get a signed one."
        )
    return document, token.strip()


def _member(document: dict, key: str) -> dict:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _differing_fields(document: dict, signed: dict) -> list[str]:
    keys = sorted(set(document) | set(signed))
    return [key for key in keys if document.get(key) != signed.get(key)]


def _signature(result: ReceiptCheck, token: str) -> dict | None:
    try:
        header, body = signing.verify_jws(token)
    except signing.SignatureInvalid as exc:
        result.add("signature", FAILED, f"The signature is not genuine ({exc}).")
        return None
    if header.get("typ") != RECEIPT_TYP:
        result.add(
            "signature",
            FAILED,
            f"This is signed by the registry but is not a receipt (typ {header.get('typ')!r}).",
        )
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        result.add("signature", FAILED, "The signed content is not a receipt.")
        return None
    result.kid = str(header.get("kid", ""))
    result.key_status = "current" if result.kid == signing.current_key().kid else "retired"
    result.add(
        "signature",
        OK,
        f"Signed by this registry's {result.key_status} key {result.kid} (Ed25519).",
    )
    return payload


def _content(result: ReceiptCheck, document: dict | None, signed: dict) -> None:
    if document is None:
        result.add("content", OK, "A bare signature: its content is the signed receipt itself.")
        return
    rest = {key: value for key, value in document.items() if key != "jws"}
    try:
        same = signing.canonical_json(rest) == signing.canonical_json(signed)
    except (UnicodeEncodeError, ValueError, RecursionError):
        same = False  # e.g. a lone surrogate pasted in: not what was signed
    if same:
        result.add("content", OK, "The readable fields are exactly what was signed.")
        return
    changed = ", ".join(_differing_fields(rest, signed)) or "(encoding)"
    result.add(
        "content",
        FAILED,
        f"The receipt was altered after signing: {changed} differ from the signed content.",
    )


def _visible(result: ReceiptCheck, html: str, signed: dict, token: str) -> None:
    differing = visible_differences(html, signed, token, result.kid)
    if not differing:
        result.add(
            "visible",
            OK,
            "The printed text of this HTML receipt shows exactly the signed facts.",
        )
        return
    result.add(
        "visible",
        FAILED,
        "The printed text of this HTML receipt was edited: "
        f"{', '.join(differing)} differ from the signed receipt. Only the signed facts shown "
        "on this page count.",
    )


def _record(result: ReceiptCheck, signed: dict) -> ConsentRecord | None:
    raw = signed.get("record_id")
    try:
        record_uuid = uuid.UUID(str(raw))
    except ValueError:
        result.add("record", FAILED, "The signed receipt names no record.")
        return None
    result.record_id = str(record_uuid)
    record = (
        ConsentRecord.objects.select_related("agreement", "version")
        .filter(uuid=record_uuid)
        .first()
    )
    if record is None:
        result.add(
            "record", FAILED, f"Record {record_uuid} is missing: it is no longer in the registry."
        )
        return None
    leaf = _member(signed, "leaf")
    row = next(record_values(ConsentRecord.objects.filter(pk=record.pk)))
    now = leaf_hash(row).hex()
    if leaf.get("hash") == now:
        result.add("record", OK, f"Record {record_uuid} is in the registry, unchanged.")
        return record
    kept = _member(leaf, "record")
    current = json.loads(canonical_bytes(row))
    fields = [
        name for name in sorted(set(kept) | set(current)) if kept.get(name) != current.get(name)
    ]
    detail = f" (changed: {', '.join(fields)})" if kept and fields else ""
    result.add(
        "record",
        FAILED,
        f"Record {record_uuid} no longer matches this receipt: it was altered in the "
        f"registry{detail}.",
    )
    return record


def _seal(result: ReceiptCheck, signed: dict, record: ConsentRecord | None) -> dict | None:
    seal = _member(signed, "seal")
    if seal.get("status") == "unsealed":
        result.add("seal", FAILED, f"The record is not sealed: {seal.get('detail', '')}")
        return None
    if seal.get("status") != "sealed":
        later = record is not None and seal_proof(record) is not None
        result.add(
            "seal",
            PENDING,
            "The record was not sealed yet when this receipt was issued"
            + ("; it is sealed now: download a new receipt for the full proof." if later else "."),
        )
        return None
    leaf = _member(signed, "leaf")
    try:
        leads = verify_proof(
            bytes.fromhex(str(leaf.get("hash"))), seal["audit_path"], str(seal["merkle_root"])
        )
    except (KeyError, ValueError, TypeError):
        leads = False
    if not leads:
        result.add("seal", FAILED, "The audit path does not lead from the leaf to the Merkle root.")
        return seal
    if record is not None:
        current = seal_proof(record)
        if current is None or current.get("merkle_root") != seal["merkle_root"]:
            result.add(
                "seal",
                FAILED,
                f"Seal batch #{seal.get('batch_number')} no longer holds this record as sealed.",
            )
            return seal
        if not current.get("root_matches"):
            result.add(
                "seal",
                FAILED,
                f"Seal batch #{seal.get('batch_number')} no longer recomputes to its signed "
                "Merkle root: records in it were altered.",
            )
            return seal
    result.add(
        "seal",
        OK,
        f"Sealed in batch #{seal.get('batch_number')}: the audit path leads to its Merkle root.",
    )
    return seal


def _checkpoint(result: ReceiptCheck, seal: dict | None) -> None:
    if seal is None:
        return
    cited = _member(seal, "checkpoint")
    token = cited.get("jws")
    if not isinstance(token, str):
        result.add(
            "checkpoint", PENDING, "The seal batch was not signed yet when this receipt was issued."
        )
        return
    try:
        verified = checkpoints.read_checkpoint(token)
    except checkpoints.CheckpointError as exc:
        result.add("checkpoint", FAILED, f"The cited checkpoint is not genuine: {exc}.")
        return
    if (verified.batch_number, verified.merkle_root, verified.batch_hash) != (
        seal.get("batch_number"),
        seal.get("merkle_root"),
        seal.get("batch_hash"),
    ):
        result.add("checkpoint", FAILED, "The cited checkpoint signs another batch than the seal.")
        return
    problems = checkpoints.registry_problems(verified)
    if problems:
        result.add("checkpoint", FAILED, "; ".join(problems) + ".")
        return
    result.add(
        "checkpoint",
        OK,
        f"Checkpoint #{verified.batch_number} ({verified.issued_at}) is genuine and the registry "
        f"still holds everything it covers ({verified.record_count} sealed records).",
    )


def _wording(result: ReceiptCheck, record: ConsentRecord | None) -> None:
    if record is None:
        return
    check = check_record_text(record)
    result.add("wording", OK if check.ok else FAILED, check.message)


def check_receipt(text: str) -> ReceiptCheck:
    """Check a receipt (JSON, bare JWS or its HTML form); raise ReceiptUnreadable if it is none."""
    document, token = parse_receipt(text)
    result = ReceiptCheck()
    signed = _signature(result, token)
    if signed is None:
        return result
    _content(result, document, signed)
    result.facts = signed_facts(signed)
    if _EMBEDDED.search(text):
        _visible(result, text, signed, token)
    record = _record(result, signed)
    seal = _seal(result, signed, record)
    _checkpoint(result, seal)
    _wording(result, record)
    return result
