"""Verify the consent registry: every row accounted for, every seal, link, text and checkpoint.

Nothing stored is trusted: each record's leaf is recomputed from its fields, each
Merkle root from the leaves, each batch hash from its header, each text hash from
the stored wording (``integrity.py``), and each stored checkpoint's signature with
the published keys. A row of the record table is either a leaf of a batch, inside
a batch's id range but refused by the sealer (named), or in the pending tail after
the last batch; anything else (an id of 0 or below, an id slipped into a sealed
range) is named as inserted out of place. A checkpoint kept outside the database
(``--checkpoint``) proves that no batch it covered was cut off.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

from django.db import connection
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from openline.consent import integrity, signing, triggers
from openline.consent.checkpoints import (
    CheckpointError,
    VerifiedCheckpoint,
    push_file_checkpoints,
    read_checkpoint,
    registry_problems,
)
from openline.consent.models import (
    Agreement,
    AgreementText,
    AgreementVersion,
    Checkpoint,
    ConsentRecord,
    SealBatch,
)
from openline.consent.sealing import (
    DIGEST_PREFIX,
    GENESIS,
    _expand,
    batch_header,
    from_the_future,
    leaf_hash,
    merkle_root,
    out_of_order,
    record_values,
)
from openline.consent.verify_report import Problem, VerifyReport

PROGRESS_EVERY = 1000  # records between progress reports
TEXT_FIELDS = ("version_id", "language", "text_sha256")


class _Stop(Exception):
    pass


class _Verifier:
    def __init__(
        self,
        report: VerifyReport,
        stop_at_first: bool,
        progress: Callable[[VerifyReport], None] | None,
    ):
        self.report = report
        self.stop_at_first = stop_at_first
        self.progress = progress
        self.next_progress = PROGRESS_EVERY
        self.texts: dict[tuple[int, str], AgreementText | None] = {}
        self.text_checks: dict[tuple[int, str, str], integrity.TextCheck] = {}
        # The floor for later records: the newest date among sealed leaves or the last seal.
        self.newest: dt.datetime | None = None
        self.newest_label = ""
        self.published: dict | None = None

    def problem(self, kind: str, record_id: int | None, message: str) -> None:
        self.report.problems.append(Problem(kind, record_id, message))
        if self.stop_at_first:
            raise _Stop

    def check_guards(self) -> None:
        # Rows are proven by the seals either way; a missing trigger means someone with
        # database rights switched the guard off, which an auditor must hear about.
        for table in triggers.guarded_tables():
            if not triggers.installed(connection, table):
                self.problem(
                    "guards",
                    None,
                    f"the database no longer guards {table}: its append-only triggers were "
                    "removed (manage.py migrate puts them back; find out who removed them)",
                )

    def tick(self) -> None:
        if self.progress is not None and self.report.checked >= self.next_progress:
            self.next_progress = self.report.checked + PROGRESS_EVERY
            self.progress(self.report)

    # ----- per record ------------------------------------------------------------------

    def check_text(self, row: dict) -> None:
        key = (row["version_id"], row["language"], row["text_sha256"])
        check = self.text_checks.get(key)
        if check is None:
            text_key = (row["version_id"], row["language"])
            if text_key not in self.texts:
                self.texts[text_key] = AgreementText.objects.filter(
                    version_id=row["version_id"], language=row["language"]
                ).first()
            stub = ConsentRecord(
                version_id=row["version_id"],
                language=row["language"],
                text_sha256=row["text_sha256"],
            )
            text = self.texts[text_key]
            check = (
                integrity.check_record_text(stub, text=text)
                if text is not None
                else integrity.check_record_text(stub)
            )
            self.text_checks[key] = check
        if not check.ok:
            self.problem("text", row["id"], f"record {row['id']} ({row['uuid']}): {check.message}")

    def check_order(self, row: dict, *, sealed_in: int | None) -> bool:
        """Check a record is not dated before records sealed earlier; True if it is in order."""
        if out_of_order(row["created_at"], self.newest):
            when = row["created_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            where = f"sealed in batch #{sealed_in}" if sealed_in else "not sealed yet"
            self.problem(
                "backdated",
                row["id"],
                f"record {row['id']} ({row['uuid']}) is dated {when} UTC, before "
                f"{self.newest_label}: backdated or out of order ({where})",
            )
            return False
        self.raise_floor(row["created_at"], f"record {row['id']} sealed earlier")
        return True

    def raise_floor(self, when: dt.datetime, label: str) -> None:
        if self.newest is None or when > self.newest:
            self.newest, self.newest_label = when, label

    def check_future(self, row: dict, *, limit: dt.datetime, where: str) -> bool:
        """Check a record is not dated later than its seal (or now); True if it is not."""
        if not from_the_future(row["created_at"], limit):
            return True
        when = row["created_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        self.problem(
            "future",
            row["id"],
            f"record {row['id']} ({row['uuid']}) is dated {when} UTC, in the future ({where})",
        )
        return False

    def check_references(self) -> None:
        """Name records whose visitor, agreement or version row is gone (hidden from every page)."""
        # The visitor model through the record's foreign key: the registry never imports it.
        visitor_model = ConsentRecord._meta.get_field("visitor").related_model
        missing = (
            ("visitor", "visitor_id", visitor_model),
            ("agreement", "agreement_id", Agreement),
            ("agreement version", "version_id", AgreementVersion),
        )
        for label, column, model in missing:
            rows = (
                ConsentRecord.objects.filter(**{f"{column}__isnull": False})
                .exclude(Exists(model._default_manager.filter(pk=OuterRef(column))))
                .order_by("id")
                .values_list("id", "uuid", column)
            )
            for record_id, uuid, value in rows.iterator(chunk_size=1000):
                self.problem(
                    "orphaned",
                    record_id,
                    f"record {record_id} ({uuid}): its {label} (id {value}) was deleted, "
                    "which hides the record from the console and the API",
                )

    # ----- the chain ---------------------------------------------------------------------

    def run(self, checkpoint: VerifiedCheckpoint | None) -> None:
        report = self.report
        # Heads first, checkpoints before batches: a sealer working meanwhile commits a batch
        # with its checkpoint, so a checkpoint seen here always has its batch seen below.
        checkpoint_head = (
            Checkpoint.objects.order_by("-batch_number")
            .values_list("batch_number", flat=True)
            .first()
        ) or 0
        batch_head = (
            SealBatch.objects.order_by("-number").values_list("number", flat=True).first() or 0
        )
        report.total_batches = SealBatch.objects.filter(number__lte=batch_head).count()
        report.total_records = ConsentRecord.objects.count()
        self.check_guards()
        self.check_references()
        for row in record_values(ConsentRecord.objects.filter(id__lte=0)):
            report.misplaced += 1
            self.problem(
                "inserted",
                row["id"],
                f"record {row['id']} ({row['uuid']}) was inserted out of place "
                "(an id no seal batch can cover)",
            )
        prev_hash, prev_last, expected, sealed = GENESIS, 0, 1, 0
        stored = (
            Checkpoint.objects.filter(batch_number__lte=checkpoint_head)
            .order_by("batch_number")
            .iterator(chunk_size=200)
        )
        pending_checkpoint = next(stored, None)
        batches = SealBatch.objects.filter(number__lte=batch_head).order_by("number")
        for batch in batches.iterator(chunk_size=200):
            self.check_batch(batch, prev_hash=prev_hash, prev_last=prev_last, expected=expected)
            # Records of the next batch came after this seal: it is their floor (idle gap).
            self.raise_floor(batch.sealed_at, f"seal batch #{batch.number} was sealed")
            prev_hash, prev_last, expected = (
                batch.batch_hash,
                batch.last_record_id,
                batch.number + 1,
            )
            sealed += batch.record_count
            signed = False
            while (
                pending_checkpoint is not None and pending_checkpoint.batch_number <= batch.number
            ):
                signed = signed or pending_checkpoint.batch_number == batch.number
                self.check_stored_checkpoint(pending_checkpoint, batch, sealed)
                pending_checkpoint = next(stored, None)
            if not signed and batch.number < checkpoint_head:
                # The sealer signs each batch as it seals it, and fills a failed signature in
                # before sealing on: a batch older than a signed one has lost its checkpoint.
                self.problem(
                    "checkpoint",
                    None,
                    f"seal batch #{batch.number} has no checkpoint, though batch "
                    f"#{checkpoint_head} has one: its checkpoint was deleted",
                )
        while pending_checkpoint is not None:
            self.check_stored_checkpoint(pending_checkpoint, None, sealed)
            pending_checkpoint = next(stored, None)
        now = timezone.now()
        for row in record_values(ConsentRecord.objects.filter(id__gt=prev_last)):
            report.unsealed += 1
            self.check_text(row)
            if self.check_future(row, limit=now, where="not sealed yet"):
                self.check_order(row, sealed_in=None)
            self.tick()
        kept = report.kept or ([checkpoint] if checkpoint is not None else [])
        for verified in kept:
            for message in registry_problems(verified):
                prefix = f"kept checkpoint #{verified.batch_number}: " if len(kept) > 1 else ""
                self.problem("checkpoint", None, prefix + message)

    def check_batch(self, batch: SealBatch, *, prev_hash: str, prev_last: int, expected: int):
        report = self.report
        report.batches += 1
        if batch.number != expected:
            self.problem(
                "batch", None, f"seal batch #{expected} is missing (found #{batch.number})"
            )
        if batch.prev_hash != prev_hash:
            self.problem(
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
            self.problem("batch", None, f"seal batch #{batch.number} header was altered")
        sealed_ids = _expand(batch.id_ranges)
        listed = set(sealed_ids)
        digests = bytes(batch.leaf_digests)
        positions = {record_id: i for i, record_id in enumerate(sealed_ids)}
        rows = record_values(
            ConsentRecord.objects.filter(id__gt=prev_last, id__lte=batch.last_record_id)
        )
        leaves: dict[int, bytes] = {}
        for row in rows:
            record_id = row["id"]
            if record_id not in listed:
                report.misplaced += 1
                self.unlisted(row, batch)
                continue
            report.records += 1
            leaf = leaf_hash(row)
            leaves[record_id] = leaf
            position = positions[record_id]
            stored = digests[position * DIGEST_PREFIX : (position + 1) * DIGEST_PREFIX]
            if leaf[:DIGEST_PREFIX] != stored:
                self.problem(
                    "altered",
                    record_id,
                    f"record {record_id} ({row['uuid']}) was altered after sealing "
                    f"(batch #{batch.number})",
                )
            self.check_text(row)
            if self.check_future(
                row, limit=batch.sealed_at, where=f"sealed in batch #{batch.number}"
            ):
                self.check_order(row, sealed_in=batch.number)
            self.tick()
        for record_id in sealed_ids:
            if record_id not in leaves:
                self.problem(
                    "removed",
                    record_id,
                    f"record {record_id} was removed (sealed in batch #{batch.number})",
                )
        if len(leaves) == len(sealed_ids):
            root = merkle_root([leaves[i] for i in sealed_ids]).hex()
            if root != batch.merkle_root:
                self.problem(
                    "batch",
                    None,
                    f"seal batch #{batch.number}: Merkle root does not match its records",
                )

    def unlisted(self, row: dict, batch: SealBatch) -> None:
        """Name a row inside a batch's id range that is not one of its leaves."""
        when = row["created_at"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        if from_the_future(row["created_at"], batch.sealed_at):
            self.problem(
                "refused",
                row["id"],
                f"record {row['id']} ({row['uuid']}) is dated {when} UTC, later than seal "
                f"batch #{batch.number} that took its turn: the sealer refused it as dated in "
                "the future",
            )
        elif out_of_order(row["created_at"], self.newest):
            self.problem(
                "refused",
                row["id"],
                f"record {row['id']} ({row['uuid']}) is dated {when} UTC, before "
                f"{self.newest_label}: the sealer refused it as backdated or out "
                f"of order (inside batch #{batch.number})",
            )
        else:
            self.problem(
                "inserted",
                row["id"],
                f"record {row['id']} ({row['uuid']}) was inserted out of place "
                f"(inside sealed batch #{batch.number})",
            )

    def check_stored_checkpoint(
        self, stored: Checkpoint, batch: SealBatch | None, sealed: int
    ) -> None:
        """Check a stored checkpoint's signature and that its batch is still the one it signed."""
        number = stored.batch_number
        if self.published is None:
            self.published = signing.jwks()  # read the key files once, not per checkpoint
        try:
            verified = read_checkpoint(stored.jws, key_set=self.published)
        except CheckpointError as exc:
            self.problem("checkpoint", None, f"checkpoint #{number}: {exc}")
            return
        if batch is None or batch.number != number:
            self.problem(
                "checkpoint",
                None,
                f"checkpoint #{number} covers seal batch #{number}, which is gone: "
                "sealed history was cut off or removed",
            )
            return
        signed = (
            verified.batch_number,
            verified.batch_hash,
            verified.merkle_root,
            verified.last_record_id,
            verified.record_count,
        )
        if signed != (number, batch.batch_hash, batch.merkle_root, batch.last_record_id, sealed):
            self.problem(
                "checkpoint",
                None,
                f"checkpoint #{number} does not match the registry: the chain up to seal "
                f"batch #{number} is not the one that was signed",
            )


def verify_registry(
    *,
    stop_at_first: bool = False,
    checkpoint: VerifiedCheckpoint | None = None,
    kept: list[VerifiedCheckpoint] | None = None,
    use_push_file: bool = True,
    progress: Callable[[VerifyReport], None] | None = None,
) -> VerifyReport:
    """Recompute every seal and text hash; name every row altered, removed, backdated or misplaced.

    ``kept`` are checkpoints kept outside (every line of a push file). Without a checkpoint,
    the push file configured in OPENLINE_CHECKPOINT_PUSH (a path) is read, every line of it.
    """
    kept = list(kept or [])
    unreadable: list[str] = []
    if checkpoint is None and not kept and use_push_file:
        kept, unreadable = push_file_checkpoints()
    if kept and checkpoint is None:
        checkpoint = kept[-1]
    report = VerifyReport(checkpoint=checkpoint, kept=kept)
    verifier = _Verifier(report, stop_at_first, progress)
    try:
        for message in unreadable:
            verifier.problem("checkpoint", None, message)
        verifier.run(checkpoint)
    except _Stop:
        report.stopped_early = True
    return report


CHAIN_KINDS = ("batch", "altered", "removed", "checkpoint")


def chain_problems_after(anchor: int) -> list[str]:
    """Verify the chain after signed checkpoint #``anchor`` (0: genesis): links, roots, leaves.

    The sealer calls this before signing checkpoints it failed to sign earlier; it ignores
    problems of single records that no checkpoint vouches for (refused, backdated, text).
    """
    report = VerifyReport()
    verifier = _Verifier(report, stop_at_first=False, progress=None)
    prev_hash, prev_last, sealed = GENESIS, 0, 0
    if anchor:
        batch = SealBatch.objects.filter(number=anchor).first()
        stored = Checkpoint.objects.filter(batch_number=anchor).first()
        sealed = (
            SealBatch.objects.filter(number__lte=anchor).aggregate(total=Sum("record_count"))[
                "total"
            ]
            or 0
        )
        if stored is None or batch is None:
            return [f"checkpoint or seal batch #{anchor} is gone"]
        verifier.check_stored_checkpoint(stored, batch, sealed)
        prev_hash, prev_last = batch.batch_hash, batch.last_record_id
    signed = {
        c.batch_number: c for c in Checkpoint.objects.filter(batch_number__gt=anchor).iterator()
    }
    expected = anchor + 1
    for batch in SealBatch.objects.filter(number__gt=anchor).order_by("number").iterator():
        verifier.check_batch(batch, prev_hash=prev_hash, prev_last=prev_last, expected=expected)
        sealed += batch.record_count
        if batch.number in signed:
            verifier.check_stored_checkpoint(signed[batch.number], batch, sealed)
        prev_hash, prev_last, expected = batch.batch_hash, batch.last_record_id, batch.number + 1
    return [p.message for p in report.problems if p.kind in CHAIN_KINDS]
