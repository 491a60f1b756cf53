"""Records whose sealing task was lost (its worker killed mid-run) are sealed by the sweep.

django-tasks never runs a task again once a worker took it, so a worker killed while sealing
leaves records unsealed until something else seals them: ``seal_leftovers``, called by the
periodic sweep of ``messengers_run`` (tested in the connectors' tests), seals what has waited
longer than a sealing task takes.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command

from openline.consent.models import SealBatch
from openline.consent.sealing import seal_leftovers, seal_pending

pytestmark = pytest.mark.django_db(transaction=True)


def sealed_count() -> int:
    return sum(SealBatch.objects.values_list("record_count", flat=True))


def verify() -> int:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("consent_verify", "--all", stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_fresh_records_are_left_to_their_own_task(give):
    give(source_id="fresh")
    assert seal_leftovers(older_than=dt.timedelta(seconds=30)) is None
    assert not SealBatch.objects.exists()


def test_records_left_unsealed_by_a_killed_run_are_sealed_once(give):
    for i in range(5):
        give(source_id=f"before-{i}")
    seal_pending(batch_size=2)  # a run that sealed some batches, as if killed after them
    first = SealBatch.objects.count()
    for i in range(3):
        give(source_id=f"after-{i}")
    result = seal_leftovers(older_than=dt.timedelta(0))
    assert result is not None and result.records == 3
    assert SealBatch.objects.count() == first + 1
    assert sealed_count() == 8
    # Nothing is left, so the next sweep does nothing and seals nothing twice.
    assert seal_leftovers(older_than=dt.timedelta(0)) is None
    assert sealed_count() == 8
    assert verify() == 0
