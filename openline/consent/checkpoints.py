"""Signed checkpoints of the consent registry: the chain's head, signed with a key outside the DB.

Like a Certificate Transparency signed tree head: after each seal batch the sealer
signs the registry head (batch number and hash, Merkle root, cumulative record
count, last record id, time) as a compact JWS with the Ed25519 key of
``signing.py``. A batch hash commits to the whole chain before it, so whoever keeps
one checkpoint can later prove that the registry still holds everything that
checkpoint covered: ``manage.py consent_verify --checkpoint FILE|URL`` checks the
signature (our published keys, retired ones included, or a pinned JWKS) and that
the batch with that number still exists with the same hash at the end of a chain
that verifies from genesis. Deleting the newest batches and their records, which
the chain alone cannot reveal, is caught that way.

Checkpoints are stored append-only (``Checkpoint``), served publicly under
``/registry/`` and, with ``OPENLINE_CHECKPOINT_PUSH``, copied to a place outside the
database: a file (one JSON line per checkpoint) or an http(s) URL (POST of the JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db.models import Sum
from django.utils import timezone

from openline.consent import signing
from openline.consent.models import Checkpoint, SealBatch

log = logging.getLogger(__name__)

CHECKPOINT_TYP = "openline-checkpoint+jws"
FORMAT = "openline-checkpoint/1"
PUSH_TIMEOUT = 5.0
PUSH_MAX_PER_RUN = 100
_PUSHED_KEY = "openline:consent:checkpoint-pushed"


def _timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def checkpoint_payload(
    *,
    batch_number: int,
    batch_hash: str,
    merkle_root: str,
    record_count: int,
    last_record_id: int,
    issued_at: dt.datetime,
) -> dict:
    """Return the registry head exactly as it is signed (canonical JSON of this dict)."""
    return {
        "format": FORMAT,
        "batch_number": batch_number,
        "batch_hash": batch_hash,
        "merkle_root": merkle_root,
        "record_count": record_count,
        "last_record_id": last_record_id,
        "issued_at": _timestamp(issued_at),
    }


def issue_checkpoint(batch: SealBatch) -> Checkpoint:
    """Sign the registry head at ``batch`` and store the checkpoint (the sealer calls this)."""
    previous = (
        Checkpoint.objects.filter(batch_number=batch.number - 1)
        .values_list("record_count", flat=True)
        .first()
    )
    if previous is not None or batch.number == 1:
        record_count = (previous or 0) + batch.record_count
    else:  # the batch before has no checkpoint yet (backfilling): count from the batches
        record_count = (
            SealBatch.objects.filter(number__lte=batch.number).aggregate(total=Sum("record_count"))[
                "total"
            ]
            or 0
        )
    issued_at = timezone.now()
    payload = checkpoint_payload(
        batch_number=batch.number,
        batch_hash=batch.batch_hash,
        merkle_root=batch.merkle_root,
        record_count=record_count,
        last_record_id=batch.last_record_id,
        issued_at=issued_at,
    )
    token = signing.sign_jws(payload, typ=CHECKPOINT_TYP)
    checkpoint = Checkpoint(
        batch_number=batch.number,
        batch_hash=batch.batch_hash,
        merkle_root=batch.merkle_root,
        record_count=record_count,
        last_record_id=batch.last_record_id,
        issued_at=issued_at,
        kid=signing.current_key().kid,
        jws=token,
    )
    checkpoint.save()
    return checkpoint


def issue_missing_checkpoints() -> int:
    """Sign every batch that has no checkpoint yet (after a signing failure); return how many."""
    signed = set(Checkpoint.objects.values_list("batch_number", flat=True))
    issued = 0
    for batch in SealBatch.objects.order_by("number").iterator():
        if batch.number not in signed:
            issue_checkpoint(batch)
            issued += 1
    return issued


def latest_checkpoint() -> Checkpoint | None:
    """Return the newest checkpoint, or None before the first seal."""
    return Checkpoint.objects.order_by("-batch_number").first()


def _listed(id_ranges: list, record_id: int) -> bool:
    return any(start <= record_id <= end for start, end in id_ranges)


def checkpoint_covering(record_id: int) -> Checkpoint | None:
    """Return the checkpoint of the batch that seals ``record_id`` (None while it is unsealed).

    None too for a record the sealer refused (dated out of order): it lies inside a batch's
    range but is not one of its leaves, so no checkpoint vouches for it.
    """
    batch = (
        SealBatch.objects.filter(last_record_id__gte=record_id)
        .order_by("number")
        .only("number", "id_ranges")
        .first()
    )
    if batch is None or not _listed(batch.id_ranges, record_id):
        return None
    return Checkpoint.objects.filter(batch_number=batch.number).first()


# ----- checking a checkpoint somebody kept -------------------------------------------------


class CheckpointError(Exception):
    """A checkpoint that cannot be read, whose signature does not verify, or that the registry lost."""


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """The signed content of a checkpoint whose signature verified."""

    kid: str
    batch_number: int
    batch_hash: str
    merkle_root: str
    record_count: int
    last_record_id: int
    issued_at: str


def extract_token(text: str) -> str:
    """Find the compact JWS in a checkpoint document (bare JWS, JSON object, or JSON lines)."""
    text = text.strip()
    if not text:
        raise CheckpointError("the checkpoint is empty")
    if text.startswith("{") or "\n" in text:
        # A JSON-lines push file: the newest checkpoint is its last line.
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        if not last.startswith("{"):
            return last
        try:
            document = json.loads(last)
        except ValueError:
            raise CheckpointError("the checkpoint is neither a JWS nor JSON") from None
        token = document.get("jws") if isinstance(document, dict) else None
        if not isinstance(token, str):
            raise CheckpointError('the checkpoint JSON has no "jws" member')
        return token.strip()
    return text


def read_checkpoint(token: str, *, key_set: dict | None = None) -> VerifiedCheckpoint:
    """Verify a checkpoint's signature (our keys, retired ones too, or ``key_set``) and parse it."""
    try:
        header, body = signing.verify_jws(token, key_set=key_set)
    except signing.SignatureInvalid as exc:
        raise CheckpointError(f"the checkpoint's signature does not verify: {exc}") from None
    if header.get("typ") != CHECKPOINT_TYP:
        raise CheckpointError(f"not a registry checkpoint (typ {header.get('typ')!r})")
    try:
        payload = json.loads(body)
        if payload.get("format") != FORMAT:
            raise CheckpointError(f"unknown checkpoint format {payload.get('format')!r}")
        return VerifiedCheckpoint(
            kid=str(header.get("kid", "")),
            batch_number=int(payload["batch_number"]),
            batch_hash=str(payload["batch_hash"]),
            merkle_root=str(payload["merkle_root"]),
            record_count=int(payload["record_count"]),
            last_record_id=int(payload["last_record_id"]),
            issued_at=str(payload["issued_at"]),
        )
    except CheckpointError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError):
        raise CheckpointError("the checkpoint's signed content is malformed") from None


def registry_problems(checkpoint: VerifiedCheckpoint) -> list[str]:
    """Compare a verified checkpoint with the registry; name what it covered that is gone."""
    number = checkpoint.batch_number
    batch = SealBatch.objects.filter(number=number).first()
    if batch is None:
        newest = SealBatch.objects.order_by("-number").values_list("number", flat=True).first()
        return [
            f"the checkpoint covers seal batch #{number}, but the registry ends at "
            f"#{newest or 0}: sealed history was cut off"
        ]
    problems = []
    if batch.batch_hash != checkpoint.batch_hash:
        problems.append(
            f"seal batch #{number} is not the batch the checkpoint signed (hash differs)"
        )
    if batch.merkle_root != checkpoint.merkle_root:
        problems.append(f"seal batch #{number} has another Merkle root than the checkpoint signed")
    if batch.last_record_id != checkpoint.last_record_id:
        problems.append(
            f"seal batch #{number} ends at record {batch.last_record_id}, "
            f"the checkpoint says {checkpoint.last_record_id}"
        )
    total = (
        SealBatch.objects.filter(number__lte=number).aggregate(total=Sum("record_count"))["total"]
        or 0
    )
    if total != checkpoint.record_count:
        problems.append(
            f"batches #1 to #{number} seal {total} records, the checkpoint says "
            f"{checkpoint.record_count}"
        )
    return problems


def load_text(source: str) -> str:
    """Read a checkpoint or JWKS from a file path or an http(s) URL."""
    if source.startswith(("http://", "https://")):
        import httpx

        try:
            response = httpx.get(source, timeout=PUSH_TIMEOUT, follow_redirects=True)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise CheckpointError(f"could not fetch {source}: {exc}") from None
        return response.text
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"could not read {source}: {exc}") from None


# ----- pushing checkpoints outside ---------------------------------------------------------


def _last_line_batch(path: Path) -> int:
    """Return the batch number of the last checkpoint appended to ``path`` (0 if none)."""
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().decode("utf-8", errors="replace")
    for line in reversed(tail.splitlines()):
        try:
            return int(json.loads(line)["batch_number"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def push_checkpoints() -> bool:
    """Copy new checkpoints to ``OPENLINE_CHECKPOINT_PUSH``; False if it must be retried."""
    target = getattr(settings, "OPENLINE_CHECKPOINT_PUSH", "")
    if not target:
        return True
    if target.startswith(("http://", "https://")):
        return _push_url(target)
    return _push_file(Path(target))


def _push_file(path: Path) -> bool:
    try:
        after = _last_line_batch(path)
        new = list(
            Checkpoint.objects.filter(batch_number__gt=after).order_by("batch_number")[
                :PUSH_MAX_PER_RUN
            ]
        )
        if not new:
            return True
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            for checkpoint in new:
                handle.write(json.dumps(checkpoint.as_public_dict(), sort_keys=True) + "\n")
    except OSError:
        log.exception("could not append registry checkpoints to %s", path)
        return False
    return True


def _push_url(url: str) -> bool:
    import httpx

    newest = latest_checkpoint()
    if newest is None:
        return True
    # Any checkpoint covers every earlier one, so after a lost cache only the newest is owed.
    after = cache.get(_PUSHED_KEY, newest.batch_number - 1)
    pending = Checkpoint.objects.filter(batch_number__gt=after).order_by("batch_number")
    for checkpoint in pending[:PUSH_MAX_PER_RUN]:
        try:
            response = httpx.post(url, json=checkpoint.as_public_dict(), timeout=PUSH_TIMEOUT)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning(
                "could not push registry checkpoint #%s to %s (%s); retrying later",
                checkpoint.batch_number,
                url,
                exc,
            )
            return False
        cache.set(_PUSHED_KEY, checkpoint.batch_number, timeout=None)
    return True
