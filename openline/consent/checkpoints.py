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

from openline.consent import signals, signing
from openline.consent.models import Checkpoint, SealBatch

log = logging.getLogger(__name__)

CHECKPOINT_TYP = "openline-checkpoint+jws"
FORMAT = "openline-checkpoint/1"
PUSH_TIMEOUT = 5.0
PUSH_MAX_PER_RUN = 100
_PUSHED_KEY = "openline:consent:checkpoint-pushed"
_PUSHED_HASH_KEY = "openline:consent:checkpoint-pushed-hash"


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
    signals.checkpoint_issued.send(sender=Checkpoint, checkpoint=checkpoint)
    return checkpoint


def issue_missing_checkpoints() -> int:
    """Sign every batch that has no checkpoint yet (after a signing failure); return how many.

    Raises ``sealing.UnsafeToSign`` (signing nothing) unless the chain from the last
    checkpoint before the first unsigned batch verifies: a deleted checkpoint must not be
    replaced by a signature over history that was forged meanwhile.
    """
    from openline.consent.sealing import UnsafeToSign
    from openline.consent.verify import chain_problems_after

    signed = set(Checkpoint.objects.values_list("batch_number", flat=True))
    missing = [
        number
        for number in SealBatch.objects.order_by("number").values_list("number", flat=True)
        if number not in signed
    ]
    if not missing:
        return 0
    anchor = max((n for n in signed if n < missing[0]), default=0)
    problems = chain_problems_after(anchor)
    # With every checkpoint deleted the chain is only checked from genesis, which a forger
    # recomputes: the checkpoints pushed outside are what still tells.
    kept, problems_reading = push_file_checkpoints()
    problems += problems_reading
    for verified in kept:
        problems += registry_problems(verified)
    if problems:
        raise UnsafeToSign(
            f"seal batches #{missing[0]} to #{missing[-1]} have no checkpoint and the chain "
            f"after checkpoint #{anchor} does not verify, so they were not signed: "
            + "; ".join(problems[:5])
        )
    for batch in SealBatch.objects.filter(number__in=missing).order_by("number").iterator():
        issue_checkpoint(batch)
    return len(missing)


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


def _line_token(line: str) -> str:
    line = line.strip()
    if not line.startswith("{"):
        return line
    try:
        document = json.loads(line)
    except ValueError:
        raise CheckpointError("the checkpoint is neither a JWS nor JSON") from None
    token = document.get("jws") if isinstance(document, dict) else None
    if not isinstance(token, str):
        raise CheckpointError('the checkpoint JSON has no "jws" member')
    return token.strip()


def extract_tokens(text: str) -> list[str]:
    """Find every compact JWS in a checkpoint document (bare JWS, JSON, or a JSON-lines file)."""
    text = text.strip()
    if not text:
        raise CheckpointError("the checkpoint is empty")
    if text.startswith("{"):
        try:
            whole = json.loads(text)
        except ValueError:
            whole = None  # JSON lines
        if isinstance(whole, dict):
            return [_line_token(json.dumps(whole))]
    if text.startswith("{") or "\n" in text:
        # A JSON-lines push file: every line is a checkpoint the registry must still contain.
        tokens = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                tokens.append(_line_token(line))
            except CheckpointError as exc:
                raise CheckpointError(f"line {number}: {exc}") from None
        return tokens
    return [text]


def extract_token(text: str) -> str:
    """Find the newest compact JWS in a checkpoint document (the last line of a push file)."""
    return extract_tokens(text)[-1]


def read_checkpoints(text: str, *, key_set: dict | None = None) -> list[VerifiedCheckpoint]:
    """Verify every checkpoint of a document (each line of a push file); raise on the first bad one."""
    tokens = extract_tokens(text)
    verified = []
    for number, token in enumerate(tokens, start=1):
        try:
            verified.append(read_checkpoint(token, key_set=key_set))
        except CheckpointError as exc:
            raise CheckpointError(f"{exc} (checkpoint {number} of {len(tokens)})") from None
    return verified


def push_file() -> Path | None:
    """Return the push file of OPENLINE_CHECKPOINT_PUSH, or None when it is a URL or unset."""
    target = getattr(settings, "OPENLINE_CHECKPOINT_PUSH", "")
    if not target or target.startswith(("http://", "https://")):
        return None
    return Path(target)


def push_file_checkpoints() -> tuple[list[VerifiedCheckpoint], list[str]]:
    """Read every checkpoint of the configured push file: (verified ones, problems)."""
    path = push_file()
    if path is None or not path.exists():
        return [], []
    try:
        return read_checkpoints(load_text(str(path))), []
    except CheckpointError as exc:
        return [], [f"push file {path}: {exc}"]


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


def _last_line(path: Path) -> tuple[int, str]:
    """Return the batch number and hash of the last checkpoint appended to ``path`` (0 if none)."""
    if not path.exists():
        return 0, ""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 65536))
        tail = handle.read().decode("utf-8", errors="replace")
    for line in reversed(tail.splitlines()):
        try:
            document = json.loads(line)
            return int(document["batch_number"]), str(document.get("batch_hash", ""))
        except (ValueError, KeyError, TypeError):
            continue
    return 0, ""


def _still_there(number: int, pushed_hash: str, target: str) -> bool:
    """Check the registry still holds the batch last pushed; else log and raise the alert."""
    if not number or not pushed_hash:
        return True
    current = SealBatch.objects.filter(number=number).values_list("batch_hash", flat=True).first()
    if current == pushed_hash:
        return True
    from openline.consent.sealing import alert_problems

    message = (
        f"seal batch #{number} pushed to {target} is "
        + ("gone" if current is None else "not the batch that was pushed (hash differs)")
        + ": sealed history was cut off or rewritten; nothing more was pushed"
    )
    alert_problems(
        [{"kind": "checkpoint", "record_id": None, "message": message}],
        summary="The registry no longer holds the checkpoints pushed outside.",
    )
    return False


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
        after, pushed_hash = _last_line(path)
        if not _still_there(after, pushed_hash, str(path)):
            return True  # retrying cannot help: the alert is up
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
    pushed = cache.get(_PUSHED_HASH_KEY)  # [number, batch hash] of the last one pushed
    pushed_hash = pushed[1] if isinstance(pushed, list | tuple) and pushed[0] == after else ""
    if not _still_there(after, pushed_hash, url):
        return True  # retrying cannot help: the alert is up
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
        cache.set(_PUSHED_HASH_KEY, [checkpoint.batch_number, checkpoint.batch_hash], timeout=None)
    return True
