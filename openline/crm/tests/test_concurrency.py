"""Two operators press Save to CRM on the same chat at the same moment."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from openline.consent.models import ConsentRecord
from openline.crm import services
from openline.crm.models import CrmConversation, CrmItem

pytestmark = [pytest.mark.dbspecific, pytest.mark.django_db(transaction=True)]


def test_concurrent_save_creates_one_item_and_one_extra_record(operator, administrator, chat):
    barrier = threading.Barrier(4)
    results, errors = [], []

    def press(actor):
        try:
            barrier.wait(timeout=10)
            results.append(
                services.save_conversation_to_crm(
                    actor=actor, conversation=chat, name="Jane Doe", email="jane@example.com"
                )
            )
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press, args=(a,)) for a in (operator, administrator) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(results) == 4
    assert CrmItem.objects.count() == 1
    assert CrmConversation.objects.count() == 1
    assert {r.item.pk for r in results} == {CrmItem.objects.get().pk}
    assert sum(r.created for r in results) == 1
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 2
    assert ConsentRecord.objects.filter(visitor=chat.visitor, origin="crm").count() == 1
