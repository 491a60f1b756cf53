"""The cached registry: seeded once, reused, resumed after an interruption, redone on a new fingerprint.

Runs on the real PostgreSQL (``DATABASE_URL``) in a database of its own, with a few thousand
records instead of millions; fails instead of skipping when CI=true.
"""

from __future__ import annotations

import os

import psycopg
import pytest

from bench import registry_seed
from bench.common import database_url, drop_database

pytestmark = pytest.mark.postgres


class Interrupted(Exception):
    pass


@pytest.fixture
def small_registry(monkeypatch):
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("needs PostgreSQL (CI=true: tests that need it fail instead of skipping)")
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    monkeypatch.setenv("BENCH_DATABASE_URL", url)
    target = database_url(f"bench_registry_test_{os.getpid()}")
    monkeypatch.setattr(registry_seed, "registry_url", lambda quick: target)
    monkeypatch.setattr(registry_seed, "QUICK_ROWS", 3_000)
    monkeypatch.setattr(registry_seed, "VISITORS", 40)
    monkeypatch.setattr(registry_seed, "CHUNK", 1_000)
    registry_seed._checked.clear()
    drop_database(target)
    yield target
    registry_seed._checked.clear()
    drop_database(target)


def _fresh(quick: bool = True, log=lambda text: None) -> registry_seed.Registry:
    registry_seed._checked.clear()  # a new run: a new process
    return registry_seed.ensure_registry(quick, log=log)


def _facts(url: str) -> dict:
    with psycopg.connect(url) as conn:
        return {
            "rows": conn.execute("SELECT count(*) FROM consent_consentrecord").fetchone()[0],
            "ids": conn.execute(
                "SELECT min(id), max(id), count(DISTINCT id) FROM consent_consentrecord"
            ).fetchone(),
            "indexes": {
                row[0]
                for row in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'consent_consentrecord'"
                )
            },
            "uuid_unique": conn.execute(
                "SELECT count(*) FROM pg_constraint WHERE conname = 'consent_consentrecord_uuid_key'"
                " AND contype = 'u'"
            ).fetchone()[0],
            # The bulk load skips foreign-key triggers: every reference must still resolve.
            "dangling": conn.execute(
                "SELECT count(*) FROM consent_consentrecord r"
                " LEFT JOIN conversations_visitor v ON v.id = r.visitor_id"
                " LEFT JOIN consent_agreementversion ver ON ver.id = r.version_id"
                " LEFT JOIN consent_agreement a ON a.id = r.agreement_id AND a.id = ver.agreement_id"
                " WHERE v.id IS NULL OR ver.id IS NULL OR a.id IS NULL"
            ).fetchone()[0],
            "next_id": conn.execute(
                "SELECT nextval(pg_get_serial_sequence('consent_consentrecord', 'id'))"
            ).fetchone()[0],
        }


def test_the_seed_is_made_once_then_reused(small_registry):
    first = _fresh()
    assert not first.reused and first.rows == 3_000
    facts = _facts(small_registry)
    assert facts["rows"] == 3_000 and facts["ids"] == (1, 3_000, 3_000)
    assert facts["dangling"] == 0
    assert facts["next_id"] > 3_000  # records written after the seed get new ids
    # The indexes dropped for the load are all back, the unique constraint as a constraint.
    assert {"consent_rec_newest", "consent_rec_agr_newest", "consent_rec_visitor"} <= facts[
        "indexes"
    ]
    assert facts["uuid_unique"] == 1
    assert first.ended - first.began == registry_seed.dt.timedelta(days=registry_seed.SPAN_DAYS)

    again = _fresh()
    assert again.reused and again.seed_seconds == 0
    assert again.began == first.began and again.setup["agreements"] == first.setup["agreements"]
    assert again.first_seed_seconds > 0
    assert _facts(small_registry)["rows"] == 3_000


def test_an_interrupted_seed_resumes_and_a_changed_fingerprint_seeds_again(
    small_registry, monkeypatch
):
    def stop_after_first_chunk(text: str) -> None:
        if "seeded 1,000/" in text:
            raise Interrupted

    with pytest.raises(Interrupted):
        _fresh(log=stop_after_first_chunk)
    assert _facts(small_registry)["rows"] == 1_000

    resumed = _fresh()
    assert not resumed.reused
    facts = _facts(small_registry)
    assert facts["rows"] == 3_000 and facts["ids"] == (1, 3_000, 3_000)
    assert facts["dangling"] == 0 and facts["uuid_unique"] == 1

    monkeypatch.setattr(registry_seed, "SPAN_DAYS", 30)  # the seed's shape changed
    redone = _fresh()
    assert not redone.reused
    assert redone.ended - redone.began == registry_seed.dt.timedelta(days=30)
    assert _facts(small_registry)["rows"] == 3_000
    assert _fresh().reused
