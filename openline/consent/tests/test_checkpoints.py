"""Signed checkpoints: issued after each seal, published, pushed outside, and checked by verify."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.core.management import call_command
from django.db import connection
from django.test import Client

from openline.consent import checkpoints, sealing, signing, triggers
from openline.consent.models import Checkpoint, SealBatch

# The pusher keeps its "last pushed" mark in the cache: each test gets a cache of its own.
pytestmark = pytest.mark.usefixtures("own_cache")


@pytest.fixture(autouse=True)
def signing_key(tmp_path, settings):
    """A signing key of this test only (rotation must not touch the development key)."""
    settings.OPENLINE_SIGNING_KEY_FILE = str(tmp_path / "keys" / "registry-ed25519.pem")
    signing._current_cached.cache_clear()
    yield
    signing._current_cached.cache_clear()


@contextlib.contextmanager
def triggers_bypassed():
    triggers.drop(connection)
    try:
        yield connection.cursor()
    finally:
        triggers.install(connection)


def run_verify(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("consent_verify", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def b64url(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def verify_independently(token: str, jwks: dict) -> dict:
    """Check a compact Ed25519 JWS with cryptography alone (no product code, no joserfc)."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(b64url(header_b64))
    assert header["alg"] == "Ed25519" and header["typ"] == "openline-checkpoint+jws"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    public = Ed25519PublicKey.from_public_bytes(b64url(jwk["x"]))
    public.verify(b64url(signature_b64), f"{header_b64}.{payload_b64}".encode())  # raises if bad
    return json.loads(b64url(payload_b64))


@pytest.fixture
def sealed(give):
    records = [give(source_id=str(i)) for i in range(5)]
    assert sealing.seal_pending(batch_size=2).batches == 3
    return records


def test_each_seal_batch_gets_a_checkpoint_signed_over_the_registry_head(sealed):
    batches = list(SealBatch.objects.order_by("number"))
    stored = list(Checkpoint.objects.order_by("batch_number"))
    assert [c.batch_number for c in stored] == [1, 2, 3]
    jwks = signing.jwks()
    for batch, checkpoint, total in zip(batches, stored, (2, 4, 5), strict=True):
        payload = verify_independently(checkpoint.jws, jwks)
        assert payload == {
            "format": "openline-checkpoint/1",
            "batch_number": batch.number,
            "batch_hash": batch.batch_hash,
            "merkle_root": batch.merkle_root,
            "record_count": total,
            "last_record_id": batch.last_record_id,
            "issued_at": checkpoint.as_public_dict()["issued_at"],
        }
        assert checkpoint.kid == signing.current_key().kid


def test_checkpoint_covering_names_the_batch_that_seals_a_record(sealed, give):
    assert checkpoints.checkpoint_covering(sealed[0].pk).batch_number == 1
    assert checkpoints.checkpoint_covering(sealed[3].pk).batch_number == 2
    assert checkpoints.checkpoint_covering(sealed[4].pk).batch_number == 3
    assert checkpoints.checkpoint_covering(give().pk) is None  # not sealed yet
    assert checkpoints.latest_checkpoint().batch_number == 3
    public = checkpoints.latest_checkpoint().as_public_dict()
    assert set(public) >= {
        "jws",
        "batch_number",
        "batch_hash",
        "record_count",
        "last_record_id",
        "issued_at",
        "kid",
    }


def test_checkpoints_are_append_only():
    from openline.consent.models import AppendOnlyError

    assert "consent_checkpoint" in triggers.APPEND_ONLY_TABLES
    with pytest.raises(AppendOnlyError):
        Checkpoint.objects.all().delete()


@pytest.mark.dbspecific
def test_the_database_refuses_to_rewrite_a_checkpoint(sealed):
    from django.db import DatabaseError, transaction

    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE consent_checkpoint SET batch_hash = 'x' WHERE batch_number = 1")


def test_a_failed_signature_never_loses_a_seal_and_is_signed_on_the_next_run(give, monkeypatch):
    give()

    def broken(*args, **kwargs):
        raise OSError("key file unreadable")

    monkeypatch.setattr(signing, "sign_jws", broken)
    assert sealing.seal_pending().records == 1
    assert SealBatch.objects.count() == 1 and not Checkpoint.objects.exists()
    monkeypatch.undo()
    sealing.seal_pending()
    assert Checkpoint.objects.get().batch_number == 1


# ----- published -----------------------------------------------------------------------------


def test_the_registry_head_its_history_and_keys_are_public(sealed):
    anonymous = Client()
    latest = anonymous.get("/registry/checkpoint")
    assert latest.status_code == 200 and latest["Access-Control-Allow-Origin"] == "*"
    body = latest.json()
    assert body["batch_number"] == 3 and body["record_count"] == 5
    assert body["jwks_url"] == "http://testserver/registry/jwks.json"
    jwks = anonymous.get("/registry/jwks.json").json()
    assert verify_independently(body["jws"], jwks)["batch_hash"] == body["batch_hash"]
    first = anonymous.get("/registry/checkpoints?limit=2").json()
    assert [c["batch_number"] for c in first["checkpoints"]] == [3, 2]
    assert first["next"] == "http://testserver/registry/checkpoints?before=2&limit=2"
    rest = anonymous.get(first["next"]).json()
    assert [c["batch_number"] for c in rest["checkpoints"]] == [1] and rest["next"] is None


def test_registry_endpoints_answer_bad_input_and_methods_clearly(db):
    anonymous = Client()
    assert anonymous.get("/registry/checkpoint").status_code == 404
    for query in ("before=%C2%B2", "before=0", "limit=5000", "limit=" + "9" * 5000, "before=-1"):
        response = anonymous.get(f"/registry/checkpoints?{query}")
        assert response.status_code == 400, query
        assert response.json()["detail"]
    assert anonymous.post("/registry/checkpoint").status_code == 405
    assert anonymous.delete("/registry/checkpoints").status_code == 405
    assert anonymous.get("/registry/checkpoints").json() == {"checkpoints": [], "next": None}


# ----- consent_verify --checkpoint ----------------------------------------------------------


def keep(tmp_path, name: str = "kept.json") -> str:
    """Keep the current registry head outside the database, as an auditor would."""
    path = tmp_path / name
    path.write_text(json.dumps(Client().get("/registry/checkpoint").json()))
    return str(path)


def cut_off_newest_batch(*, with_checkpoint: bool) -> None:
    """The attack: delete the newest batch and the records it sealed (and its checkpoint)."""
    batch = SealBatch.objects.order_by("-number").first()
    previous = SealBatch.objects.get(number=batch.number - 1)
    with triggers_bypassed() as cursor:
        cursor.execute(
            "DELETE FROM consent_consentrecord WHERE id > %s AND id <= %s",
            [previous.last_record_id, batch.last_record_id],
        )
        cursor.execute("DELETE FROM consent_sealbatch WHERE number = %s", [batch.number])
        if with_checkpoint:
            cursor.execute("DELETE FROM consent_checkpoint WHERE batch_number = %s", [batch.number])


@pytest.mark.dbspecific
def test_a_kept_checkpoint_catches_the_newest_batch_cut_off_with_its_records(sealed, tmp_path):
    kept = keep(tmp_path)
    code, out, _ = run_verify("--checkpoint", kept)
    assert code == 0 and "Checkpoint #3 (5 records" in out and "signature verified" in out
    cut_off_newest_batch(with_checkpoint=True)
    assert run_verify()[0] == 0  # the chain alone cannot see it
    code, _, err = run_verify("--checkpoint", kept)
    assert code == 1
    assert "covers seal batch #3, but the registry ends at #2: sealed history was cut off" in err


@pytest.mark.dbspecific
def test_a_stored_checkpoint_left_behind_also_reveals_the_cut(sealed):
    cut_off_newest_batch(with_checkpoint=False)
    code, _, err = run_verify()
    assert code == 1 and "checkpoint #3 covers seal batch #3, which is gone" in err


@pytest.mark.dbspecific
def test_a_rewritten_batch_does_not_match_the_kept_checkpoint(sealed, tmp_path, give):
    kept = keep(tmp_path)
    # Rewrite history wholesale: drop everything and re-seal other records under the same numbers.
    with triggers_bypassed() as cursor:
        cursor.execute("DELETE FROM consent_checkpoint")
        cursor.execute("DELETE FROM consent_sealbatch")
        cursor.execute("DELETE FROM consent_consentrecord WHERE id = %s", [sealed[1].pk])
    give(source_id="replacement")
    sealing.seal_pending(batch_size=2)
    assert SealBatch.objects.count() == 3
    assert run_verify()[0] == 0
    code, _, err = run_verify("--checkpoint", kept, "--all")
    assert code == 1 and "seal batch #3 is not the batch the checkpoint signed" in err


def test_a_forged_or_foreign_checkpoint_is_rejected(sealed, tmp_path):
    body = Client().get("/registry/checkpoint").json()
    header, payload, signature = body["jws"].split(".")
    claims = json.loads(b64url(payload))
    claims["record_count"] = 1
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = tmp_path / "forged.jws"
    forged.write_text(f"{header}.{forged_payload}.{signature}")
    code, _, err = run_verify("--checkpoint", str(forged))
    assert code == 1 and "CHECKPOINT REJECTED: the checkpoint's signature does not verify" in err
    for junk in ("", "not a jws", '{"no": "jws"}', "[1, 2]"):
        path = tmp_path / "junk.json"
        path.write_text(junk)
        code, _, err = run_verify("--checkpoint", str(path))
        assert code == 1 and "CHECKPOINT REJECTED" in err, junk
    code, _, err = run_verify("--checkpoint", str(tmp_path / "missing.json"))
    assert code == 1 and "could not read" in err


def test_pinned_keys_decide_which_signatures_count(sealed, tmp_path):
    kept = keep(tmp_path)
    pinned = tmp_path / "jwks.json"
    pinned.write_text(json.dumps(Client().get("/registry/jwks.json").json()))
    assert run_verify("--checkpoint", kept, "--jwks", str(pinned))[0] == 0
    # A key set the auditor pinned from someone else: our signature does not count.
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    x = base64.urlsafe_b64encode(stranger).rstrip(b"=").decode()
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}))
    code, _, err = run_verify("--checkpoint", kept, "--jwks", str(other))
    assert code == 1 and "signature does not verify" in err


def test_checkpoints_signed_before_a_key_rotation_still_verify(sealed, tmp_path, give):
    kept = keep(tmp_path)
    old_kid = signing.current_key().kid
    out = io.StringIO()
    call_command("consent_rotate_key", stdout=out)
    new_kid = signing.current_key().kid
    assert new_kid != old_kid and f"{old_kid} retired" in out.getvalue()
    give()
    sealing.seal_pending()
    assert checkpoints.latest_checkpoint().kid == new_kid
    published = Client().get("/registry/jwks.json").json()
    assert {k["kid"] for k in published["keys"]} == {old_kid, new_kid}
    code, out_text, _ = run_verify("--checkpoint", kept)
    assert code == 0 and f"key {old_kid}" in out_text
    assert run_verify()[0] == 0  # stored checkpoints of both keys verify


@pytest.mark.dbspecific
def test_verify_fetches_a_checkpoint_and_keys_over_http_like_an_outside_party(
    live_asgi, give, tmp_path
):
    import httpx

    give()
    give()
    sealing.seal_pending()
    url = f"{live_asgi.url}/registry/checkpoint"
    assert httpx.get(url).json()["batch_number"] == 1
    jwks_url = f"{live_asgi.url}/registry/jwks.json"
    code, out, _ = run_verify("--checkpoint", url, "--jwks", jwks_url)
    assert code == 0 and "Checkpoint #1 (2 records" in out
    code, _, err = run_verify("--checkpoint", f"{live_asgi.url}/registry/nothing-here")
    assert code == 1 and "could not fetch" in err


# ----- pushed outside -------------------------------------------------------------------------


def test_checkpoints_are_appended_to_a_push_file_and_verify_reads_its_last_line(
    give, tmp_path, settings
):
    from openline.consent.tasks import push_registry_checkpoints

    log_file = tmp_path / "outside" / "checkpoints.jsonl"
    settings.OPENLINE_CHECKPOINT_PUSH = str(log_file)
    give()
    sealing.seal_pending()
    push_registry_checkpoints.call()
    give()
    sealing.seal_pending()
    push_registry_checkpoints.call()
    push_registry_checkpoints.call()  # nothing new: nothing appended twice
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [line["batch_number"] for line in lines] == [1, 2]
    code, out, _ = run_verify("--checkpoint", str(log_file))
    assert code == 0 and "Checkpoint #2 (2 records" in out


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    fail = False

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).fail:
            self.send_response(503)
            self.end_headers()
            return
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received, _Receiver.fail = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Receiver
    server.shutdown()
    server.server_close()


def test_checkpoints_are_posted_to_a_push_url_and_a_failure_is_retried_later(
    give, settings, receiver, caplog
):
    from django.core.cache import cache

    server, handler = receiver
    settings.OPENLINE_CHECKPOINT_PUSH = f"http://127.0.0.1:{server.server_port}/checkpoints"
    cache.delete(checkpoints._PUSHED_KEY)
    give()
    sealing.seal_pending()
    assert checkpoints.push_checkpoints() is True
    assert [c["batch_number"] for c in handler.received] == [1]
    handler.fail = True
    give()
    assert sealing.seal_pending().records == 1  # the outside place being down never blocks sealing
    assert checkpoints.push_checkpoints() is False
    assert "could not push registry checkpoint #2" in caplog.text
    handler.fail = False
    give()
    sealing.seal_pending()
    assert checkpoints.push_checkpoints() is True
    assert [c["batch_number"] for c in handler.received] == [1, 2, 3]
    assert handler.received[1]["jws"] == Checkpoint.objects.get(batch_number=2).jws


def test_an_unreachable_push_url_is_logged_not_raised(give, settings, caplog):
    from django.core.cache import cache

    from openline.conftest import free_port

    settings.OPENLINE_CHECKPOINT_PUSH = f"http://127.0.0.1:{free_port()}/down"
    cache.delete(checkpoints._PUSHED_KEY)
    give()
    sealing.seal_pending()
    assert checkpoints.push_checkpoints() is False
    assert "retrying later" in caplog.text


def test_a_first_use_never_overwrites_a_key_another_process_just_created(tmp_path, settings):
    path = tmp_path / "keys" / "registry-ed25519.pem"
    first = Ed25519PrivateKey.generate()
    signing._write_private(path, first, replace=False)
    kept = path.read_bytes()
    # A second process that also found no key a moment ago loses the race, quietly.
    signing._write_private(path, Ed25519PrivateKey.generate(), replace=False)
    assert path.read_bytes() == kept
    assert list(path.parent.iterdir()) == [path]  # no temporary files left behind


def test_verify_jws_answers_signature_invalid_for_any_junk():
    for junk in ("", "a.b", "a.b.c", "....", "eyJhbGciOiJub25lIn0.e30.", 42):
        with pytest.raises(signing.SignatureInvalid):
            signing.verify_jws(junk)  # type: ignore[arg-type]


@pytest.mark.dbspecific
def test_batches_sealed_before_checkpoints_existed_are_signed_on_the_next_run(sealed):
    from django.core.cache import cache

    with triggers_bypassed() as cursor:  # a registry sealed by a version without checkpoints
        cursor.execute("DELETE FROM consent_checkpoint")
    cache.delete(sealing.CHECKPOINTS_MISSING)
    assert sealing.seal_pending().batches == 0
    assert [c.record_count for c in Checkpoint.objects.order_by("batch_number")] == [2, 4, 5]
    assert run_verify()[0] == 0


def test_consent_seal_signs_and_pushes_checkpoints_and_reports_refused_records(
    give, tmp_path, settings
):
    import datetime as dt
    import uuid

    from openline.consent.models import ConsentRecord

    log_file = tmp_path / "checkpoints.jsonl"
    settings.OPENLINE_CHECKPOINT_PUSH = str(log_file)
    first = give()
    call_command("consent_seal", stdout=io.StringIO())
    backdated = ConsentRecord.objects.get(pk=first.pk)  # a copy, inserted as an attacker would
    backdated.pk, backdated.uuid = None, uuid.uuid4()
    backdated.created_at = first.created_at - dt.timedelta(days=1)
    backdated._state.adding = True
    backdated.save()
    out, err = io.StringIO(), io.StringIO()
    call_command("consent_seal", stdout=out, stderr=err)
    assert "Sealed 0 records in 1 new batches." in out.getvalue()
    assert "Refused 1 record(s)" in err.getvalue() and str(backdated.pk) in err.getvalue()
    assert [json.loads(x)["batch_number"] for x in log_file.read_text().splitlines()] == [1, 2]
