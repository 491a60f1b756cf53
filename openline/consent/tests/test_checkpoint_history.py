"""Checkpoints that vanish, push files that are regrown: the holes a reviewer found (issue 8)."""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from openline.consent import checkpoints, runs, sealing
from openline.consent.models import (
    Checkpoint,
    SealBatch,
    VerificationRun,
    VerificationSource,
    VerificationStatus,
)
from openline.consent.tests.test_checkpoints import (  # noqa: F401 - signing_key is autouse
    cut_off_newest_batch,
    receiver,
    run_verify,
    signing_key,
    triggers_bypassed,
)

# The pusher keeps its "last pushed" mark in the cache: each test gets a cache of its own.
pytestmark = [pytest.mark.dbspecific, pytest.mark.usefixtures("own_cache")]


@pytest.fixture
def sealed(give):
    records = [give(source_id=str(i)) for i in range(5)]
    assert sealing.seal_pending(batch_size=2).batches == 3
    return records


def sealer_alerts() -> list[str]:
    return [
        problem["message"]
        for run in VerificationRun.objects.filter(
            source=VerificationSource.SEALER, status=VerificationStatus.FAILED
        )
        for problem in run.problems
    ]


def regrow(give, *, batches: int) -> None:
    """Cut the newest batch (records and checkpoint) and let new consents seal in its place."""
    cut_off_newest_batch(with_checkpoint=True)
    for i in range(batches * 2):
        give(source_id=f"regrown {i}")
    sealing.seal_pending(batch_size=2)


# ----- checkpoints deleted from the database ---------------------------------------------------


def test_a_batch_older_than_a_signed_one_without_its_checkpoint_fails_verify(sealed):
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM consent_checkpoint WHERE batch_number = 2")
    code, _, err = run_verify("--all")
    assert code == 1
    assert "seal batch #2 has no checkpoint, though batch #3 has one" in err


def test_the_newest_batch_waiting_for_its_signature_does_not_fail_verify(give, monkeypatch):
    from openline.consent import signing

    give()
    sealing.seal_pending()
    monkeypatch.setattr(signing, "sign_jws", lambda *a, **k: (_ for _ in ()).throw(OSError))
    give()
    sealing.seal_pending()  # sealed, the signature failed: signed on the next run
    assert run_verify()[0] == 0


def test_the_sealer_refuses_to_sign_missing_checkpoints_over_a_chain_that_does_not_verify(sealed):
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET ip = '198.51.100.9' WHERE id = %s", [sealed[2].pk]
        )
        cursor.execute("DELETE FROM consent_checkpoint WHERE batch_number >= 2")
    sealing.seal_pending()
    assert list(Checkpoint.objects.values_list("batch_number", flat=True)) == [1]
    (alert,) = sealer_alerts()
    assert "seal batches #2 to #3 have no checkpoint" in alert and "altered" in alert


def test_a_checkpoint_deleted_behind_a_forged_batch_is_not_signed_again(sealed):
    """Forge batch #2 consistently (leaves, root, hash) but leave #3 signed: the link breaks."""
    batch = SealBatch.objects.get(number=2)
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET ip = '198.51.100.9' WHERE id = %s", [sealed[2].pk]
        )
        rows = list(
            sealing.record_values(
                sealing.ConsentRecord.objects.filter(id__gt=sealed[1].pk, id__lte=sealed[3].pk)
            )
        )
        leaves = [sealing.leaf_hash(row) for row in rows]
        root = sealing.merkle_root(leaves).hex()
        header = sealing.batch_header(
            number=2,
            sealed_at=batch.sealed_at,
            prev_last_id=sealed[1].pk,
            last_record_id=batch.last_record_id,
            record_count=2,
            id_ranges=batch.id_ranges,
            merkle_root_hex=root,
            prev_hash=batch.prev_hash,
        )
        cursor.execute(
            "UPDATE consent_sealbatch SET leaf_digests = %s, merkle_root = %s, batch_hash = %s "
            "WHERE number = 2",
            [
                b"".join(leaf[: sealing.DIGEST_PREFIX] for leaf in leaves),
                root,
                sealing.hashlib.sha256(header).hexdigest(),
            ],
        )
        cursor.execute("DELETE FROM consent_checkpoint WHERE batch_number = 2")
    cache.set(sealing.CHECKPOINTS_MISSING, 1, timeout=None)
    sealing.seal_pending()
    assert not Checkpoint.objects.filter(batch_number=2).exists()
    assert any("does not chain" in alert for alert in sealer_alerts())
    code, _, err = run_verify("--all")
    assert code == 1 and "seal batch #2 has no checkpoint" in err


def test_a_gap_left_by_a_failed_signature_is_filled_once_the_chain_verifies(sealed):
    with triggers_bypassed() as cursor:  # as if signing #2 failed and #3 then worked
        cursor.execute("DELETE FROM consent_checkpoint WHERE batch_number = 2")
    sealing.seal_pending()
    assert [c.record_count for c in Checkpoint.objects.order_by("batch_number")] == [2, 4, 5]
    assert run_verify()[0] == 0 and not sealer_alerts()


# ----- push file and push URL -----------------------------------------------------------------


def push_file(tmp_path, settings):
    path = tmp_path / "outside" / "checkpoints.jsonl"
    settings.OPENLINE_CHECKPOINT_PUSH = str(path)
    return path


def test_verify_checks_every_line_of_a_push_file_not_only_the_last(sealed, tmp_path, give):
    path = tmp_path / "kept.jsonl"
    lines = [c.as_public_dict() for c in Checkpoint.objects.order_by("batch_number")]
    regrow(give, batches=2)  # a new #3 (never pushed: the file already had #3) and #4
    lines.append(Checkpoint.objects.get(batch_number=4).as_public_dict())
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out, err = run_verify("--checkpoint", str(path), "--all")
    assert code == 1 and "and 3 earlier ones: signature verified" in out
    assert "kept checkpoint #3: seal batch #3 is not the batch the checkpoint signed" in err


def test_the_pusher_does_not_append_after_the_pushed_batch_was_replaced(
    sealed, tmp_path, settings, give
):
    path = push_file(tmp_path, settings)
    assert checkpoints.push_checkpoints() is True
    assert len(path.read_text().splitlines()) == 3
    regrow(give, batches=2)
    checkpoints.push_checkpoints()
    assert len(path.read_text().splitlines()) == 3  # nothing appended over the regrown #3
    (alert,) = sealer_alerts()
    assert "seal batch #3 pushed to" in alert and "hash differs" in alert


def test_plain_verify_and_the_console_run_read_the_configured_push_file(
    sealed, tmp_path, settings, give
):
    path = push_file(tmp_path, settings)
    checkpoints.push_checkpoints()
    code, out, _ = run_verify()
    assert code == 0 and f"Reading the checkpoints pushed to {path}" in out
    regrow(give, batches=1)
    code, _, err = run_verify()
    assert code == 1 and "seal batch #3 is not the batch the checkpoint signed" in err
    run = VerificationRun.objects.create(
        created_at=sealing.timezone.now(), source=VerificationSource.CONSOLE
    )
    run = runs.execute_run(run_id=run.pk)
    assert run.status == VerificationStatus.FAILED
    assert "seal batch #3 is not the batch" in run.problems[0]["message"]


def test_the_url_pusher_stops_when_the_pushed_batch_was_replaced(sealed, settings, receiver, give):  # noqa: F811
    server, handler = receiver
    settings.OPENLINE_CHECKPOINT_PUSH = f"http://127.0.0.1:{server.server_port}/checkpoints"
    cache.delete(checkpoints._PUSHED_KEY)
    cache.delete(checkpoints._PUSHED_HASH_KEY)
    assert checkpoints.push_checkpoints() is True
    assert [c["batch_number"] for c in handler.received] == [3]
    regrow(give, batches=2)
    checkpoints.push_checkpoints()
    assert [c["batch_number"] for c in handler.received] == [3]
    assert any("seal batch #3 pushed to http://" in alert for alert in sealer_alerts())


def forge_whole_chain(record_id: int) -> None:
    """The reviewer's forge: alter a record, recompute every leaf, root and link, drop checkpoints."""
    with triggers_bypassed() as cursor:
        cursor.execute(
            "UPDATE consent_consentrecord SET ip = '198.51.100.66' WHERE id = %s", [record_id]
        )
        cursor.execute("DELETE FROM consent_checkpoint")
        prev_hash, prev_last = sealing.GENESIS, 0
        for batch in SealBatch.objects.order_by("number"):
            ids = sealing._expand(batch.id_ranges)
            rows = {
                row["id"]: row
                for row in sealing.record_values(sealing.ConsentRecord.objects.filter(id__in=ids))
            }
            leaves = [sealing.leaf_hash(rows[i]) for i in ids]
            root = sealing.merkle_root(leaves).hex()
            header = sealing.batch_header(
                number=batch.number,
                sealed_at=batch.sealed_at,
                prev_last_id=prev_last,
                last_record_id=batch.last_record_id,
                record_count=batch.record_count,
                id_ranges=batch.id_ranges,
                merkle_root_hex=root,
                prev_hash=prev_hash,
            )
            batch_hash = sealing.hashlib.sha256(header).hexdigest()
            cursor.execute(
                "UPDATE consent_sealbatch SET leaf_digests = %s, merkle_root = %s, "
                "prev_hash = %s, batch_hash = %s WHERE id = %s",
                [
                    b"".join(leaf[: sealing.DIGEST_PREFIX] for leaf in leaves),
                    root,
                    prev_hash,
                    batch_hash,
                    batch.pk,
                ],
            )
            prev_hash, prev_last = batch_hash, batch.last_record_id
    cache.delete(sealing.CHECKPOINTS_MISSING)


def test_a_forged_chain_with_every_checkpoint_deleted_is_caught_by_the_push_file(
    sealed, tmp_path, settings
):
    push_file(tmp_path, settings)
    checkpoints.push_checkpoints()
    forge_whole_chain(sealed[0].pk)
    code, _, err = run_verify("--all")
    assert code == 1 and "kept checkpoint #1: seal batch #1 is not the batch" in err
    sealing.seal_pending()
    assert not Checkpoint.objects.exists()  # the real key never signs the forged chain
    assert any("were not signed" in alert for alert in sealer_alerts())
