"""Tamper evidence for the consent registry: Merkle batches chained by hash.

Writers never wait for the sealer: ``record_consent`` only inserts a row. A
sealer (the ``seal_pending_records`` task, enqueued after each commit, or
``manage.py consent_seal``) later takes the records after the last sealed id,
builds a Merkle tree over their canonical content and appends one ``SealBatch``
whose hash chains to the batch before it. Only sealers take turns (a unique
batch number), never the clients giving consent.

On PostgreSQL, record ids come from a sequence and a slow transaction may commit
id 41 after id 42 is visible. Before sealing up to the highest visible id the
sealer waits until every transaction then writing to the records table has
finished (they hold its RowExclusiveLock), so no lower id can appear later. SQLite has one writer at a time, so
what is visible is final.

Records must be dated in id order, within ``OPENLINE_SEAL_CLOCK_SKEW`` (60 s by
default): a concurrent writer sets ``created_at`` just before its INSERT takes an
id, so two writers can swap by milliseconds, but a record dated more than the
skew before a record already sealed was backdated (or written with a wrong
clock). The sealer leaves such a record out of the leaves of the batch whose id
range holds it, so the chain goes on, every row stays accounted for, and
verification names the refused record for as long as it exists (and the console
shows the alert). Lowering the skew after records were sealed makes old ones fail.

After each batch the chain's head is signed as a checkpoint (``checkpoints.py``).
``verify.py`` recomputes every leaf, root, link and text hash and names every
record that was altered, removed, backdated or inserted out of place.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from openline.consent.models import (
    Checkpoint,
    ConsentRecord,
    SealBatch,
    VerificationRun,
    VerificationSource,
    VerificationStatus,
)

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
DIGEST_PREFIX = 8  # bytes of each leaf hash kept to locate a changed record
CHECKPOINTS_MISSING = "openline:consent:checkpoints-missing"
GENESIS = "0" * 64

# Every evidential field, in a fixed order. visitor_label is left out on purpose: it is
# a display label, and the seal must keep verifying whatever the console shows.
CANONICAL_FIELDS = (
    "id",
    "uuid",
    "created_at",
    "agreement_id",
    "version_id",
    "language",
    "text_sha256",
    "state",
    "method",
    "origin",
    "visitor_id",
    "channel_id",
    "conversation_id",
    "source_type",
    "source_id",
    "source_label",
    "address",
    "ip",
    "ip_missing_reason",
    "user_agent",
    "evidence",
)


def _normalise(name: str, value):
    if value is None:
        return None
    if name == "created_at":
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if name == "uuid":
        return str(value)
    if name == "evidence" and isinstance(value, str):
        # A raw (undecoded) JSON column: decode so both databases hash the same value.
        return json.loads(value)
    return value


def canonical_bytes(values: dict) -> bytes:
    """Serialise a record's evidential fields to the exact bytes that are hashed."""
    payload = {name: _normalise(name, values[name]) for name in CANONICAL_FIELDS}
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def leaf_hash(values: dict) -> bytes:
    """Hash one record as a Merkle leaf (domain-separated from inner nodes, as RFC 6962)."""
    return hashlib.sha256(b"\x00" + canonical_bytes(values)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """Return the root of a Merkle tree; an odd node is carried up unchanged."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_proof(leaves: list[bytes], index: int) -> list[dict]:
    """Return the audit path proving ``leaves[index]`` is under the root."""
    path = []
    level = list(leaves)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(
                {"side": "left" if sibling < index else "right", "hash": level[sibling].hex()}
            )
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        index //= 2
    return path


def verify_proof(leaf: bytes, path: list[dict], root_hex: str) -> bool:
    """Check an audit path from ``merkle_proof`` against a root."""
    current = leaf
    for step in path:
        other = bytes.fromhex(step["hash"])
        current = _node(other, current) if step["side"] == "left" else _node(current, other)
    return current.hex() == root_hex


def _ranges(ids: list[int]) -> list[list[int]]:
    ranges: list[list[int]] = []
    for value in ids:
        if ranges and ranges[-1][1] == value - 1:
            ranges[-1][1] = value
        else:
            ranges.append([value, value])
    return ranges


def _expand(ranges: Iterable[list[int]]) -> list[int]:
    return [value for start, end in ranges for value in range(start, end + 1)]


def batch_header(
    *,
    number: int,
    sealed_at: dt.datetime,
    prev_last_id: int,
    last_record_id: int,
    record_count: int,
    id_ranges: list,
    merkle_root_hex: str,
    prev_hash: str,
) -> bytes:
    """Serialise the fields of a batch that its hash covers."""
    return json.dumps(
        {
            "number": number,
            "sealed_at": sealed_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "after_record_id": prev_last_id,
            "last_record_id": last_record_id,
            "record_count": record_count,
            "id_ranges": id_ranges,
            "merkle_root": merkle_root_hex,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def record_values(queryset) -> Iterator[dict]:
    """Yield the canonical fields of records, ordered by id."""
    # Streamed: the pending tail (or a forged range) can be far larger than memory.
    yield from queryset.order_by("id").values(*CANONICAL_FIELDS).iterator(chunk_size=1000)


# ----- sealing ----------------------------------------------------------------------------


def _settled_high_water_mark(timeout: float) -> int | None:
    """Return an id up to which no more records can appear, or None if writers are still busy."""
    if connection.vendor != "postgresql":
        return ConsentRecord.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM consent_consentrecord")
        high = cursor.fetchone()[0] or 0
        # A transaction that took an id <= high and has not committed yet inserted a row,
        # so it holds RowExclusiveLock on the table until it ends. Wait only for those
        # writers (not for unrelated long transactions), identified by virtual xid.
        cursor.execute(
            "SELECT DISTINCT virtualtransaction FROM pg_locks "
            "WHERE locktype = 'relation' AND relation = 'consent_consentrecord'::regclass "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"
        )
        writers = [row[0] for row in cursor.fetchall()]
        deadline = time.monotonic() + timeout
        while writers:
            cursor.execute(
                "SELECT DISTINCT virtualxid FROM pg_locks WHERE locktype = 'virtualxid' "
                "AND virtualxid = ANY(%s)",
                [writers],
            )
            writers = [row[0] for row in cursor.fetchall()]
            if not writers:
                break
            if time.monotonic() > deadline:
                return None
            time.sleep(0.02)
    return high


@dataclass
class SealResult:
    batches: int = 0
    records: int = 0
    refused: list[int] = field(default_factory=list)
    waiting: bool = False


def clock_skew() -> dt.timedelta:
    """Return how much earlier than a sealed record a later record may be dated."""
    return dt.timedelta(seconds=max(0.0, float(settings.OPENLINE_SEAL_CLOCK_SKEW)))


def out_of_order(created_at: dt.datetime, newest: dt.datetime | None) -> bool:
    """Tell whether a record dated ``created_at`` comes too late after one dated ``newest``."""
    return newest is not None and created_at < newest - clock_skew()


def from_the_future(created_at: dt.datetime, sealed_at: dt.datetime) -> bool:
    """Tell whether a record is dated later than the seal that would take it (beyond the skew)."""
    return created_at > sealed_at + clock_skew()


def seal_pending(*, batch_size: int = BATCH_SIZE, wait_timeout: float = 5.0) -> SealResult:
    """Seal every settled, unsealed record into new batches; safe to run concurrently."""
    from openline.consent.checkpoints import issue_missing_checkpoints

    result = SealResult()
    high = _settled_high_water_mark(wait_timeout)
    if high is None:
        result.waiting = True
        return result
    if _checkpoints_missing():
        # A batch was sealed while its checkpoint could not be signed: sign it now, but only
        # once the chain from the last signed checkpoint verifies (never sign forged history).
        try:
            with transaction.atomic():
                issue_missing_checkpoints()
            cache.delete(CHECKPOINTS_MISSING)
        except UnsafeToSign as exc:
            alert_problems(
                [{"kind": "checkpoint", "record_id": None, "message": str(exc)}],
                summary="The sealer refused to sign checkpoints over a chain that does not verify.",
            )
        except Exception:  # noqa: BLE001 - a concurrent sealer signed it, or the key is still unreadable
            log.exception("could not sign the checkpoints of earlier seal batches")
    conflicts = 0
    while True:
        try:
            sealed = _seal_one(high=high, batch_size=batch_size)
        except IntegrityError:
            # Another sealer appended the same batch first; carry on after it.
            conflicts += 1
            if conflicts > 20:
                raise
            continue
        if sealed is None:
            return result
        batch, refused = sealed
        result.batches += 1
        result.records += batch.record_count
        result.refused.extend(refused)


def seal_leftovers(*, older_than: dt.timedelta, wait_timeout: float = 1.0) -> SealResult | None:
    """Seal records a sealing task should have sealed by now; None when nothing waits that long.

    The task enqueued after each commit is lost when its worker is killed mid-run (the task
    stays "running" and is never picked again) or when it could not be enqueued; a periodic
    sweep calls this so such records are sealed anyway. Safe beside a running sealer.
    """
    after = (
        SealBatch.objects.order_by("-number").values_list("last_record_id", flat=True).first() or 0
    )
    oldest = (
        ConsentRecord.objects.filter(id__gt=after)
        .order_by("id")
        .values_list("created_at", flat=True)
        .first()
    )
    if oldest is None or oldest > timezone.now() - older_than:
        return None
    return seal_pending(wait_timeout=wait_timeout)


def _checkpoints_missing() -> bool:
    # Cheap on every run: a flag set when signing failed, and (after a restart lost the
    # flag, or an upgrade from before checkpoints) whether the newest batch is signed.
    if cache.get(CHECKPOINTS_MISSING):
        return True
    newest = SealBatch.objects.order_by("-number").values_list("number", flat=True).first()
    if newest is None:
        return False
    if not Checkpoint.objects.filter(batch_number=newest).exists():
        return True
    # A gap further back (a signature that failed once, then worked for the next batch).
    return Checkpoint.objects.count() < SealBatch.objects.count()


class UnsafeToSign(Exception):
    """The chain after the last signed checkpoint does not verify: signing it would vouch for it."""


def _is_sealed_leaf(record_id: int, created_at: dt.datetime) -> bool:
    batch = (
        SealBatch.objects.filter(last_record_id__gte=record_id)
        .order_by("number")
        .only("id_ranges", "sealed_at")
        .first()
    )
    return (
        batch is not None
        and any(start <= record_id <= end for start, end in batch.id_ranges)
        and not from_the_future(created_at, batch.sealed_at)
    )


def date_floor(last: SealBatch | None) -> dt.datetime | None:
    """Return the date later records are compared with: the newest sealed leaf or the last seal.

    A record dated before the previous batch was sealed (beyond the skew) arrived after that
    seal and was backdated into the idle gap; a record the sealer refused (backdated, or dated
    in the future) is not a leaf and never moves the floor. ``verify.py`` applies the same rule.
    """
    if last is None:
        return None
    floor = last.sealed_at
    # Only leaves dated after the last seal can raise the floor: few (within the skew).
    candidates = (
        ConsentRecord.objects.filter(id__gt=0, id__lte=last.last_record_id, created_at__gt=floor)
        .order_by("-created_at")
        .values_list("id", "created_at")
    )
    for record_id, created_at in candidates.iterator(chunk_size=100):
        if _is_sealed_leaf(record_id, created_at):
            return created_at
    return floor


@transaction.atomic
def _seal_one(*, high: int, batch_size: int) -> tuple[SealBatch, list[int]] | None:
    last = SealBatch.objects.order_by("-number").first()
    after = last.last_record_id if last else 0
    rows = list(
        ConsentRecord.objects.filter(id__gt=after, id__lte=high)
        .order_by("id")
        .values(*CANONICAL_FIELDS)[:batch_size]
    )
    if not rows:
        return None
    # A record dated before one already sealed (beyond the clock skew) was backdated or
    # written out of place: it is left out of the leaves, though inside the batch's id range,
    # so verification names it forever while later records keep being sealed.
    newest = date_floor(last)
    sealed_at = timezone.now()
    accepted: list[dict] = []
    refused: list[dict] = []
    for row in rows:
        # Dated in the future too: sealing it would make every genuine record look backdated.
        if out_of_order(row["created_at"], newest) or from_the_future(row["created_at"], sealed_at):
            refused.append(row)
            continue
        accepted.append(row)
        newest = row["created_at"] if newest is None else max(newest, row["created_at"])
    leaves = [leaf_hash(row) for row in accepted]
    ids = [row["id"] for row in accepted]
    last_id = rows[-1]["id"]
    root = merkle_root(leaves).hex()
    number = (last.number + 1) if last else 1
    prev_hash = last.batch_hash if last else GENESIS
    id_ranges = _ranges(ids)
    header = batch_header(
        number=number,
        sealed_at=sealed_at,
        prev_last_id=after,
        last_record_id=last_id,
        record_count=len(ids),
        id_ranges=id_ranges,
        merkle_root_hex=root,
        prev_hash=prev_hash,
    )
    batch = SealBatch(
        number=number,
        sealed_at=sealed_at,
        first_record_id=ids[0] if ids else last_id,
        last_record_id=last_id,
        record_count=len(ids),
        id_ranges=id_ranges,
        leaf_digests=b"".join(leaf[:DIGEST_PREFIX] for leaf in leaves),
        merkle_root=root,
        prev_hash=prev_hash,
        batch_hash=hashlib.sha256(header).hexdigest(),
    )
    with transaction.atomic():
        batch.save()
    _sign(batch)
    if refused:
        _alert_refused(batch, refused, newest_allowed=sealed_at + clock_skew())
    return batch, [row["id"] for row in refused]


def _sign(batch: SealBatch) -> None:
    from openline.consent.checkpoints import issue_checkpoint

    try:
        with transaction.atomic():
            issue_checkpoint(batch)
    except Exception:  # noqa: BLE001 - never lose a seal over its signature; signed next run
        log.exception("could not sign the checkpoint of seal batch #%s", batch.number)
        cache.set(CHECKPOINTS_MISSING, 1, timeout=None)


def _alert_refused(batch: SealBatch, refused: list[dict], *, newest_allowed: dt.datetime) -> None:
    problems = [
        {
            "kind": "refused",
            "record_id": row["id"],
            "message": (
                f"record {row['id']} ({row['uuid']}) is dated "
                f"{row['created_at']:%Y-%m-%d %H:%M:%S} UTC, "
                + (
                    "later than the seal that took its turn (dated in the future)"
                    if row["created_at"] > newest_allowed
                    else "before records already sealed or the last seal"
                )
                + f": the sealer refused it (batch #{batch.number})"
            ),
        }
        for row in refused
    ]
    alert_problems(
        problems, summary=f"The sealer refused {len(problems)} record(s) dated out of order."
    )


def alert_problems(problems: list[dict], *, summary: str) -> None:
    """Log problems found while sealing or pushing and raise the console alert."""
    for problem in problems:
        log.error("consent registry: %s", problem["message"])
    now = timezone.now()
    VerificationRun.objects.create(
        created_at=now,
        source=VerificationSource.SEALER,
        status=VerificationStatus.FAILED,
        started_at=now,
        finished_at=now,
        problem_count=len(problems),
        problems=problems[:100],
        summary=summary,
    )


# ----- proofs -----------------------------------------------------------------------------


def seal_proof(record: ConsentRecord) -> dict | None:
    """Return the Merkle proof that ``record`` is sealed, or None while it is pending."""
    batch = SealBatch.objects.filter(last_record_id__gte=record.pk).order_by("number").first()
    if batch is None:
        return None
    previous = SealBatch.objects.filter(number=batch.number - 1).first()
    after = previous.last_record_id if previous else 0
    rows = list(
        record_values(ConsentRecord.objects.filter(id__gt=after, id__lte=batch.last_record_id))
    )
    sealed_ids = _expand(batch.id_ranges)
    by_id = {row["id"]: row for row in rows}
    if record.pk not in sealed_ids or any(i not in by_id for i in sealed_ids):
        return None
    leaves = [leaf_hash(by_id[i]) for i in sealed_ids]
    index = sealed_ids.index(record.pk)
    return {
        "type": "merkle-batch",
        "hash_algorithm": "SHA-256",
        "leaf_encoding": "sha256(0x00 || canonical JSON of the record), nodes sha256(0x01 || left || right)",
        "leaf_hash": leaves[index].hex(),
        "leaf_index": index,
        "audit_path": merkle_proof(leaves, index),
        "merkle_root": batch.merkle_root,
        "root_matches": merkle_root(leaves).hex() == batch.merkle_root,
        "batch_number": batch.number,
        "batch_hash": batch.batch_hash,
        "prev_batch_hash": batch.prev_hash,
        "sealed_at": batch.sealed_at.isoformat(),
    }


# ----- verification (openline/consent/verify.py) -------------------------------------------


def verify_registry(**options):
    """Recompute every seal (see ``openline.consent.verify.verify_registry``)."""
    from openline.consent.verify import verify_registry as run

    return run(**options)
