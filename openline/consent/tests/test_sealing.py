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
