"""Tamper evidence: seals, proofs, and consent_verify catching altered, removed and inserted rows."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from django.core.management import call_command
from django.db import connection

from openline.consent import sealing, triggers
from openline.consent.models import ConsentRecord, SealBatch

pytestmark = pytest.mark.dbspecific


@contextlib.contextmanager
def triggers_bypassed():
    """Play the attacker with database access: drop the triggers, then put them back."""
    triggers.drop(connection)
    try:
        yield connection.cursor()
    finally:
        triggers.install(connection)


def verify() -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("consent_verify", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


@pytest.fixture
def sealed(give):
    records = [give(source_id=str(i)) for i in range(7)]
    result = sealing.seal_pending(batch_size=3)
    assert (result.batches, result.records) == (3, 7)
    return records


def test_an_untouched_registry_verifies(sealed):
    code, out, _ = verify()
    assert code == 0 and "3 batches, 7 sealed records" in out


def test_sealing_again_does_nothing_and_new_records_go_to_a_new_batch(sealed, give):
    assert sealing.seal_pending().batches == 0
    give()
    assert sealing.seal_pending().records == 1
    batches = list(SealBatch.objects.order_by("number"))
    assert [b.number for b in batches] == [1, 2, 3, 4]
    assert all(b.prev_hash == a.batch_hash for a, b in zip(batches, batches[1:], strict=False))


def test_an_altered_record_is_caught_and_named(sealed):
    victim = sealed[4]
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET ip = '198.51.100.1' WHERE id = %s", [victim.pk]
        )
    code, _, err = verify()
    assert code == 1
    assert f"{victim.uuid}" in err and "altered" in err


def test_an_altered_evidence_field_is_caught(sealed):
    victim = sealed[0]
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET evidence = %s WHERE id = %s",
            [json.dumps({"channel_consent_settings": {"consent_enabled": False}}), victim.pk],
        )
    report = sealing.verify_registry()
    assert report.first_problem.kind == "altered" and report.first_problem.record_id == victim.pk


def test_a_removed_record_is_caught(sealed):
    victim = sealed[2]
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM consent_consentrecord WHERE id = %s", [victim.pk])
    code, _, err = verify()
    assert code == 1 and f"record {victim.pk} was removed" in err


def test_a_record_inserted_into_sealed_history_is_caught(give):
    first, rolled_back, last = give(), give(), give()
    with triggers_bypassed() as cursor:  # as if the middle insert had been rolled back
        cursor.execute("DELETE FROM consent_consentrecord WHERE id = %s", [rolled_back.pk])
    sealing.seal_pending()
    assert SealBatch.objects.get().id_ranges == [[first.pk, first.pk], [last.pk, last.pk]]
    assert sealing.verify_registry().ok
    forged = give(source_id="forged")
    with triggers_bypassed() as cursor:  # slip a record into the sealed past
        cursor.execute(
            "UPDATE consent_consentrecord SET id = %s WHERE id = %s", [rolled_back.pk, forged.pk]
        )
    code, _, err = verify()
    assert code == 1 and f"{forged.uuid}" in err and "inserted out of place" in err


def test_a_removed_or_altered_seal_batch_is_caught(sealed):
    with triggers_bypassed() as cursor:
        cursor.execute("UPDATE consent_sealbatch SET merkle_root = %s WHERE number = 2", ["0" * 64])
    assert verify()[0] == 1
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM consent_sealbatch WHERE number = 2")
    report = sealing.verify_registry()
    assert report.first_problem.kind in ("batch", "inserted")


def test_proofs_verify_against_the_batch_root(sealed):
    for record in sealed:
        proof = sealing.seal_proof(record)
        assert proof["root_matches"]
        assert sealing.verify_proof(
            bytes.fromhex(proof["leaf_hash"]), proof["audit_path"], proof["merkle_root"]
        )


def test_consent_seal_command_seals_pending_records(give):
    give()
    give()
    out = io.StringIO()
    call_command("consent_seal", stdout=out)
    assert "Sealed 2 records" in out.getvalue()
    assert ConsentRecord.objects.count() == 2 and SealBatch.objects.count() == 1


def test_canonical_content_leaves_out_the_display_label_and_includes_evidence(give):
    record = give()
    values = next(sealing.record_values(ConsentRecord.objects.filter(pk=record.pk)))
    payload = json.loads(sealing.canonical_bytes(values))
    assert "visitor_label" not in payload
    assert payload["evidence"]["channel_consent_settings"]["consent_enabled"] is True
    assert payload["ip"] == "203.0.113.7" and payload["text_sha256"] == record.text_sha256


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sealer_waits_for_a_writer_still_in_its_transaction_on_postgresql(give):
    """A slow writer's lower id must not appear after the sealer passed it (PostgreSQL sequences)."""
    import threading

    from django.db import connections, transaction

    if connection.vendor != "postgresql":
        from openline.conftest import unavailable

        unavailable("this test needs DATABASE_URL pointing at PostgreSQL")
    inside, release = threading.Event(), threading.Event()

    def slow_writer():
        try:
            with transaction.atomic():
                give(source_id="slow")
                inside.set()
                release.wait(10)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inside.wait(10)
    give(source_id="fast")  # commits with a higher id while the slow one is open
    assert sealing.seal_pending(wait_timeout=0.3).waiting is True
    assert not SealBatch.objects.exists()
    release.set()
    writer.join(10)
    result = sealing.seal_pending()
    assert result.records == 2
    assert sealing.verify_registry().ok


# ----- every row accounted for; backdated records refused (issue 8, section 3) -------------


def forge_copy(record: ConsentRecord, **changes) -> ConsentRecord:
    """Insert a copy of ``record`` as an attacker would (INSERT is all the triggers allow)."""
    import uuid as uuid_module

    copy = ConsentRecord.objects.get(pk=record.pk)
    copy.pk = changes.pop("id", None)
    copy.uuid = uuid_module.uuid4()
    for name, value in changes.items():
        setattr(copy, name, value)
    copy._state.adding = True
    copy.save()
    return copy


@pytest.mark.parametrize("forged_id", [0, -5])
def test_a_record_with_an_id_no_batch_can_cover_fails_verification_by_name(sealed, forged_id):
    forged = forge_copy(sealed[0], id=forged_id)
    code, _, err = verify()
    assert code == 1
    assert f"record {forged_id} ({forged.uuid}) was inserted out of place" in err
    assert sealing.seal_pending().batches == 0  # and the sealer never takes it


def test_a_record_with_id_zero_is_named_even_before_anything_is_sealed(give):
    forged = forge_copy(give(), id=0)
    report = sealing.verify_registry(stop_at_first=False)
    assert [(p.kind, p.record_id) for p in report.problems] == [("inserted", 0)]
    assert str(forged.uuid) in report.problems[0].message


def test_a_backdated_record_is_refused_by_the_sealer_and_named_by_verify(sealed, give):
    import datetime as dt

    from openline.consent.models import VerificationRun

    backdated = forge_copy(sealed[-1], created_at=sealed[0].created_at - dt.timedelta(days=30))
    later = give(source_id="later")
    result = sealing.seal_pending()
    # The chain goes on: the later record is sealed, the backdated one is left out.
    assert result.refused == [backdated.pk] and result.records == 1
    batch = SealBatch.objects.order_by("-number").first()
    assert batch.last_record_id == later.pk
    assert batch.id_ranges == [[later.pk, later.pk]]
    assert sealing.seal_proof(backdated) is None and sealing.seal_proof(later) is not None
    code, _, err = verify()
    assert code == 1
    assert f"record {backdated.pk} ({backdated.uuid})" in err and "the sealer refused it" in err
    alert = VerificationRun.objects.filter(source="sealer").get()
    assert alert.status == "failed" and alert.problems[0]["record_id"] == backdated.pk
    # Still named on every later run: sealing again does not bury it.
    give(source_id="even later")
    assert sealing.seal_pending().records == 1
    assert verify()[0] == 1


def test_a_backdated_record_alone_still_moves_the_chain_past_it(sealed):
    import datetime as dt

    backdated = forge_copy(sealed[-1], created_at=sealed[0].created_at - dt.timedelta(hours=2))
    result = sealing.seal_pending()
    assert (result.batches, result.records, result.refused) == (1, 0, [backdated.pk])
    assert sealing.seal_pending().batches == 0  # not stuck, not sealed twice
    report = sealing.verify_registry(stop_at_first=False)
    assert [(p.kind, p.record_id) for p in report.problems] == [("refused", backdated.pk)]


def test_a_pending_backdated_record_is_named_before_the_sealer_sees_it(sealed):
    import datetime as dt

    backdated = forge_copy(sealed[-1], created_at=sealed[0].created_at - dt.timedelta(minutes=5))
    report = sealing.verify_registry(stop_at_first=False)
    assert [(p.kind, p.record_id) for p in report.problems] == [("backdated", backdated.pk)]
    assert "not sealed yet" in report.problems[0].message


def test_records_within_the_clock_skew_are_sealed_as_concurrent_writers_produce_them(
    sealed, settings
):
    import datetime as dt

    settings.OPENLINE_SEAL_CLOCK_SKEW = 5
    # A writer that took its time between now() and INSERT: dated 2 s before the newest seal.
    newest = ConsentRecord.objects.order_by("-created_at").first()
    slow = forge_copy(newest, created_at=newest.created_at - dt.timedelta(seconds=2))
    assert sealing.seal_pending().refused == []
    assert sealing.verify_registry().ok
    assert sealing.seal_proof(slow) is not None


def test_a_backdated_record_sealed_by_an_older_sealer_fails_verification(sealed, give):
    """Registries sealed before the rule: a backdated leaf inside a batch is still named."""
    import datetime as dt

    backdated = forge_copy(sealed[-1], created_at=sealed[0].created_at - dt.timedelta(days=1))
    with pytest.MonkeyPatch.context() as patch:  # the sealer as it was: no order check
        patch.setattr(sealing, "out_of_order", lambda created_at, newest: False)
        assert sealing.seal_pending().records == 1
    code, _, err = verify()
    assert code == 1
    assert f"record {backdated.pk} ({backdated.uuid}) is dated" in err and "backdated" in err


def test_verify_recomputes_text_hashes_from_the_stored_wording(sealed):
    record = sealed[0]
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_agreementtext SET rendered_html = %s, text = %s "
            "WHERE version_id = %s AND language = %s",
            ["<p>Forged wording</p>", "Forged wording", record.version_id, record.language],
        )
    code, _, err = verify()
    assert code == 1
    assert f"record {record.pk} ({record.uuid})" in err and "text altered" in err


def test_stopping_early_says_so_and_how_far_it_got(sealed):
    victim = sealed[1]
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET ip = '198.51.100.1' WHERE id = %s", [victim.pk]
        )
    code, _, err = verify()
    assert code == 1
    assert "Checked: stopped at the first problem after 1 of 3 batches and 2 of 7 records" in err
    assert "3 batches, 7 sealed records" not in err
    out, err_all = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit):
        call_command("consent_verify", "--all", stdout=out, stderr=err_all)
    assert "Checked: 3 batches, 7 sealed records, 0 not sealed yet." in err_all.getvalue()


# ----- dates the sealer refuses (issue 8 review) ---------------------------------------------


def redate(record, when) -> None:
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET created_at = %s WHERE id = %s", [when, record.pk]
        )


def test_a_future_dated_record_is_refused_and_does_not_block_genuine_records(give):
    import datetime as dt

    forged = give(source_id="forged")
    redate(forged, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    genuine = give(source_id="genuine")
    result = sealing.seal_pending()
    assert result.refused == [forged.pk] and result.records == 1
    assert sealing.seal_proof(genuine) is not None and sealing.seal_proof(forged) is None
    later = give(source_id="later")
    assert sealing.seal_pending().refused == []  # the forged date never became the floor
    assert sealing.seal_proof(later) is not None
    report = sealing.verify_registry()
    assert [(p.kind, p.record_id) for p in report.problems] == [("refused", forged.pk)]
    assert "in the future" in report.problems[0].message


def test_verify_names_a_future_dated_record_sealed_by_an_older_sealer(give):
    import datetime as dt

    record = give()
    sealing.seal_pending()
    batch = SealBatch.objects.get()
    # What the old sealer did: seal a record dated years ahead (leaf and root recomputed).
    redate(record, dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    leaf = sealing.leaf_hash(next(sealing.record_values(ConsentRecord.objects.all())))
    root = sealing.merkle_root([leaf]).hex()
    header = sealing.batch_header(
        number=1,
        sealed_at=batch.sealed_at,
        prev_last_id=0,
        last_record_id=batch.last_record_id,
        record_count=1,
        id_ranges=batch.id_ranges,
        merkle_root_hex=root,
        prev_hash=batch.prev_hash,
    )
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM consent_checkpoint")
        cursor.execute(
            "UPDATE consent_sealbatch SET leaf_digests = %s, merkle_root = %s, batch_hash = %s",
            [leaf[: sealing.DIGEST_PREFIX], root, sealing.hashlib.sha256(header).hexdigest()],
        )
    report = sealing.verify_registry()
    assert [(p.kind, p.record_id) for p in report.problems] == [("future", record.pk)]


def test_a_record_backdated_into_the_idle_gap_before_the_last_seal_is_refused(give):
    from django.utils import timezone

    first = give(source_id="first")
    redate(first, timezone.now() - timezone.timedelta(hours=1))
    sealing.seal_pending()
    sealed_at = SealBatch.objects.get().sealed_at
    # Dated after the newest sealed record, but half an hour before the last seal: it was
    # written after that seal and backdated into the gap.
    gap = give(source_id="gap")
    redate(gap, sealed_at - timezone.timedelta(minutes=30))
    honest = give(source_id="honest")
    result = sealing.seal_pending()
    assert result.refused == [gap.pk] and result.records == 1
    report = sealing.verify_registry()
    assert [(p.kind, p.record_id) for p in report.problems] == [("refused", gap.pk)]
    assert "seal batch #1 was sealed" in report.problems[0].message
    assert sealing.seal_proof(honest) is not None


def test_verify_names_a_record_backdated_into_the_idle_gap_while_it_is_pending(give):
    from django.utils import timezone

    redate(give(), timezone.now() - timezone.timedelta(hours=1))
    sealing.seal_pending()
    pending = give()
    redate(pending, SealBatch.objects.get().sealed_at - timezone.timedelta(minutes=5))
    report = sealing.verify_registry()
    assert [(p.kind, p.record_id) for p in report.problems] == [("backdated", pending.pk)]


def test_records_within_the_clock_skew_of_the_last_seal_are_sealed(give):
    from django.utils import timezone

    give()
    sealing.seal_pending()
    late = give()
    redate(late, SealBatch.objects.get().sealed_at - timezone.timedelta(seconds=30))
    assert sealing.seal_pending().refused == []
    assert sealing.verify_registry().ok


def test_verify_names_records_whose_visitor_row_was_deleted(give, visitor):
    records = [give(), give()]
    sealing.seal_pending()
    from openline.consent import visitor_triggers

    visitor_triggers.drop(connection)  # the attacker drops the visitor guards too
    try:
        with triggers_bypassed() as cursor:
            # Foreign keys are deferred (or off on SQLite): a raw DELETE leaves the records
            # behind, hidden from every console and API page that joins the visitor.
            cursor.execute("SELECT * FROM conversations_visitor WHERE id = %s", [visitor.pk])
            columns, row = [c[0] for c in cursor.description], cursor.fetchone()
            cursor.execute("DELETE FROM conversations_visitor WHERE id = %s", [visitor.pk])
        report = sealing.verify_registry()
        with connection.cursor() as cursor:  # put it back: the test database checks FKs after
            cursor.execute(
                f"INSERT INTO conversations_visitor ({', '.join(columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                list(row),
            )
    finally:
        visitor_triggers.install(connection)
    assert [(p.kind, p.record_id) for p in report.problems] == [("orphaned", r.pk) for r in records]
    assert "its visitor" in report.problems[0].message


def test_verify_names_append_only_triggers_that_were_removed(give):
    from openline.consent.verify import verify_registry

    give()
    sealing.seal_pending()
    assert verify_registry().ok
    triggers.drop(connection, ["consent_auditevent"])
    try:
        report = verify_registry()
    finally:
        triggers.install(connection)
    assert not report.ok
    assert [p.kind for p in report.problems] == ["guards"]
    assert "consent_auditevent" in report.problems[0].message
    assert verify_registry().ok
