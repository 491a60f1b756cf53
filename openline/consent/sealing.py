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

``verify_registry`` recomputes every leaf, root and link and names the first
record that was altered, removed or inserted out of place.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from openline.consent.models import ConsentRecord, SealBatch

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
DIGEST_PREFIX = 8  # bytes of each leaf hash kept to locate a changed record
# Unsealed records older than this (relative to the newest seal) cannot be explained
# by a slow transaction: verification reports them as inserted out of place.
TAIL_GRACE = dt.timedelta(hours=1)
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
    yield from queryset.order_by("id").values(*CANONICAL_FIELDS)


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
    waiting: bool = False


def seal_pending(*, batch_size: int = BATCH_SIZE, wait_timeout: float = 5.0) -> SealResult:
    """Seal every settled, unsealed record into new batches; safe to run concurrently."""
    result = SealResult()
    high = _settled_high_water_mark(wait_timeout)
    if high is None:
        result.waiting = True
        return result
    conflicts = 0
    while True:
        try:
            batch = _seal_one(high=high, batch_size=batch_size)
        except IntegrityError:
            # Another sealer appended the same batch first; carry on after it.
            conflicts += 1
            if conflicts > 20:
                raise
            continue
        if batch is None:
            return result
        result.batches += 1
        result.records += batch.record_count


@transaction.atomic
def _seal_one(*, high: int, batch_size: int) -> SealBatch | None:
    last = SealBatch.objects.order_by("-number").first()
    after = last.last_record_id if last else 0
    rows = list(
        ConsentRecord.objects.filter(id__gt=after, id__lte=high)
        .order_by("id")
        .values(*CANONICAL_FIELDS)[:batch_size]
    )
    if not rows:
        return None
    leaves = [leaf_hash(row) for row in rows]
    ids = [row["id"] for row in rows]
    root = merkle_root(leaves).hex()
    number = (last.number + 1) if last else 1
    prev_hash = last.batch_hash if last else GENESIS
    sealed_at = timezone.now()
    id_ranges = _ranges(ids)
    header = batch_header(
        number=number,
        sealed_at=sealed_at,
        prev_last_id=after,
        last_record_id=ids[-1],
        record_count=len(ids),
        id_ranges=id_ranges,
        merkle_root_hex=root,
        prev_hash=prev_hash,
    )
    batch = SealBatch(
        number=number,
        sealed_at=sealed_at,
        first_record_id=ids[0],
        last_record_id=ids[-1],
        record_count=len(ids),
        id_ranges=id_ranges,
        leaf_digests=b"".join(leaf[:DIGEST_PREFIX] for leaf in leaves),
        merkle_root=root,
        prev_hash=prev_hash,
        batch_hash=hashlib.sha256(header).hexdigest(),
    )
    with transaction.atomic():
        batch.save()
    return batch


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


# ----- verification -----------------------------------------------------------------------


@dataclass
class Problem:
    kind: str  # altered | removed | inserted | batch
    record_id: int | None
    message: str


@dataclass
class VerifyReport:
    batches: int = 0
    records: int = 0
    unsealed: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


def _uuid_of(record_id: int) -> str:
    value = ConsentRecord.objects.filter(pk=record_id).values_list("uuid", flat=True).first()
    return f"record {record_id} ({value})" if value else f"record {record_id}"


class _Stop(Exception):
    pass


def verify_registry(*, stop_at_first: bool = False) -> VerifyReport:
    """Recompute every seal; report records altered, removed or inserted out of place."""
    report = VerifyReport()
    with contextlib.suppress(_Stop):
        _verify(report, stop_at_first)
    return report


def _verify(report: VerifyReport, stop_at_first: bool) -> None:
    prev_hash = GENESIS
    prev_last = 0
    expected_number = 1
    last_batch = None

    def problem(kind: str, record_id: int | None, message: str) -> None:
        report.problems.append(Problem(kind, record_id, message))
        if stop_at_first:
            raise _Stop

    for batch in SealBatch.objects.order_by("number").iterator(chunk_size=200):
        last_batch = batch
        report.batches += 1
        if batch.number != expected_number:
            problem(
                "batch", None, f"seal batch #{expected_number} is missing (found #{batch.number})"
            )
        if batch.prev_hash != prev_hash:
            problem(
                "batch", None, f"seal batch #{batch.number} does not chain to the batch before it"
            )
        header = batch_header(
            number=batch.number,
            sealed_at=batch.sealed_at,
            prev_last_id=prev_last,
            last_record_id=batch.last_record_id,
            record_count=batch.record_count,
            id_ranges=batch.id_ranges,
            merkle_root_hex=batch.merkle_root,
            prev_hash=batch.prev_hash,
        )
        if hashlib.sha256(header).hexdigest() != batch.batch_hash:
            problem("batch", None, f"seal batch #{batch.number} header was altered")
        sealed_ids = _expand(batch.id_ranges)
        digests = bytes(batch.leaf_digests)
        rows = {
            row["id"]: row
            for row in record_values(
                ConsentRecord.objects.filter(id__gt=prev_last, id__lte=batch.last_record_id)
            )
        }
        leaves = []
        for position, record_id in enumerate(sealed_ids):
            row = rows.pop(record_id, None)
            if row is None:
                problem(
                    "removed",
                    record_id,
                    f"record {record_id} was removed (sealed in batch #{batch.number})",
                )
                continue
            leaf = leaf_hash(row)
            leaves.append(leaf)
            stored = digests[position * DIGEST_PREFIX : (position + 1) * DIGEST_PREFIX]
            if leaf[:DIGEST_PREFIX] != stored:
                problem(
                    "altered",
                    record_id,
                    f"{_uuid_of(record_id)} was altered after sealing (batch #{batch.number})",
                )
        for record_id in sorted(rows):
            problem(
                "inserted",
                record_id,
                f"{_uuid_of(record_id)} was inserted out of place (inside sealed batch #{batch.number})",
            )
        if len(leaves) == len(sealed_ids) and merkle_root(leaves).hex() != batch.merkle_root:
            problem(
                "batch", None, f"seal batch #{batch.number}: Merkle root does not match its records"
            )
        report.records += len(sealed_ids)
        prev_hash = batch.batch_hash
        prev_last = batch.last_record_id
        expected_number = batch.number + 1

    tail = ConsentRecord.objects.filter(id__gt=prev_last)
    report.unsealed = tail.count()
    if last_batch is not None and report.unsealed:
        suspicious = (
            tail.filter(created_at__lt=last_batch.sealed_at - TAIL_GRACE)
            .order_by("id")
            .values_list("id", flat=True)
            .first()
        )
        if suspicious is not None:
            problem(
                "inserted",
                suspicious,
                f"{_uuid_of(suspicious)} was inserted out of place (dated before sealed records)",
            )
