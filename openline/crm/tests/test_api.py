"""The CRM API: the same rules as the console, over JSON."""

from __future__ import annotations

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openline.consent.models import ConsentRecord
from openline.crm.models import CrmItem
from openline.crm.tests.conftest import make_chat

pytestmark = pytest.mark.django_db

API = "/api/v1/crm"


def test_save_to_crm_over_the_api(operator_client, chat):
    response = operator_client.post(
        f"{API}/conversations/{chat.pk}/save",
        {"name": "Jane Doe", "email": "JANE@example.com", "phone": "+49 30 1234567"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["item"]["kind"] == "lead"
    assert body["item"]["emails"] == ["JANE@example.com"]
    [record_id] = body["consent_records_added"]
    record = ConsentRecord.objects.get(uuid=record_id)
    assert record.origin == "crm" and record.address.endswith(f"/console/inbox/{chat.pk}/")

    again = operator_client.post(
        f"{API}/conversations/{chat.pk}/save", {"name": "Jane Doe"}, content_type="application/json"
    )
    assert again.status_code == 200
    assert again.json()["already_saved"] is True and again.json()["consent_records_added"] == []
    assert ConsentRecord.objects.filter(visitor=chat.visitor).count() == 2


def test_bad_input_and_permissions(operator_client, other_operator, auditor_client, chat):
    bad = operator_client.post(
        f"{API}/conversations/{chat.pk}/save",
        {"email": "jane@", "phone": "x"},
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert "email:" in bad.json()["detail"] and "phone:" in bad.json()["detail"]
    assert (
        operator_client.post(
            f"{API}/conversations/999999/save", {}, content_type="application/json"
        ).status_code
        == 404
    )
    other = Client()
    other.force_login(other_operator)
    forbidden = other.post(
        f"{API}/conversations/{chat.pk}/save", {}, content_type="application/json"
    )
    assert forbidden.status_code == 403
    assert auditor_client.get(f"{API}/items").status_code == 403
    assert Client().get(f"{API}/items").status_code == 401
    assert operator_client.get(f"{API}/items/{2**70}").status_code == 404
    assert operator_client.get(f"{API}/items?after={2**70}").status_code == 422
    assert operator_client.get(f"{API}/items?q=a%00b").status_code == 422
    nul = operator_client.post(
        f"{API}/conversations/{chat.pk}/save", {"name": "a\x00b"}, content_type="application/json"
    )
    assert nul.status_code == 422
    assert not CrmItem.objects.exists()


def test_list_get_export_and_delete(operator_client, admin_client, channel, chat):
    operator_client.post(
        f"{API}/conversations/{chat.pk}/save",
        {"name": "Jane Doe", "phone": "+49 30 1234567"},
        content_type="application/json",
    )
    for i in range(3):
        operator_client.post(
            f"{API}/conversations/{make_chat(channel).pk}/save",
            {"name": f"Client {i}"},
            content_type="application/json",
        )
    page = operator_client.get(f"{API}/items?limit=2").json()
    assert [i["name"] for i in page["items"]] == ["Client 2", "Client 1"]
    rest = operator_client.get(f"{API}/items?limit=2&after={page['next_after']}").json()
    assert [i["name"] for i in rest["items"]] == ["Client 0", "Jane Doe"]
    assert rest["next_after"] is None
    assert [i["name"] for i in operator_client.get(f"{API}/items?q=301234").json()["items"]] == [
        "Jane Doe"
    ]
    jane = CrmItem.objects.get(name="Jane Doe")
    detail = operator_client.get(f"{API}/items/{jane.pk}").json()
    assert detail["conversation_ids"] == [chat.pk] and len(detail["consent_record_ids"]) == 2

    assert operator_client.get(f"{API}/items/{jane.pk}/export").status_code == 403
    export = admin_client.get(f"{API}/items/{jane.pk}/export").json()
    assert export["crm_item"]["id"] == jane.pk and len(export["consent_records"]) == 2

    assert operator_client.delete(f"{API}/items/{jane.pk}").status_code == 403
    deleted = admin_client.delete(f"{API}/items/{jane.pk}")
    assert deleted.status_code == 200
    assert deleted.json()["counts"]["consent_records_kept"] == 2
    assert admin_client.delete(f"{API}/items/{jane.pk}").status_code == 410
    assert admin_client.get(f"{API}/items/{jane.pk}").status_code == 410
    assert admin_client.get(f"{API}/items/999999").status_code == 404


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(max_size=220),
    email=st.text(max_size=60),
    phone=st.text(max_size=50),
    kind=st.sampled_from(["lead", "contact", None, "customer"]),
)
def test_any_save_payload_gets_a_clear_answer(operator_client, chat, name, email, phone, kind):
    payload = {"name": name, "email": email, "phone": phone}
    if kind is not None:
        payload["kind"] = kind
    response = operator_client.post(
        f"{API}/conversations/{chat.pk}/save", payload, content_type="application/json"
    )
    assert response.status_code in (200, 201, 422), (payload, response.content)
    body = response.json()
    if response.status_code == 422:
        assert isinstance(body["detail"], str | list) and body["detail"], body
    else:
        assert body["item"]["id"] > 0 and body["created"] is (response.status_code == 201), body


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=st.text(max_size=220), after=st.integers(min_value=-5, max_value=2**64))
def test_any_list_query_gets_a_clear_answer(operator_client, chat, q, after):
    response = operator_client.get(f"{API}/items", {"q": q, "after": after})
    assert response.status_code in (200, 422), response.content
