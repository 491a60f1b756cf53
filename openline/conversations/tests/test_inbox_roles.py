"""The inbox's new console URLs answer each role and method as the role table will say.

Rows for ``accounts/tests/test_roles.py``: add_note (STAFF, POST), canned_replies (STAFF, GET),
canned_create (STAFF, FORM), canned_json (STAFF, GET), canned_edit (STAFF, FORM),
canned_delete (STAFF, FORM).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from openline.conversations.url_samples import url_samples

pytestmark = pytest.mark.django_db

ROWS = {
    "conversations:add_note": ("POST",),
    "conversations:canned_replies": ("GET",),
    "conversations:canned_create": ("GET", "POST"),
    "conversations:canned_json": ("GET",),
    "conversations:canned_edit": ("GET", "POST"),
    "conversations:canned_delete": ("GET", "POST"),
}


def send(client, method, url):
    with transaction.atomic():
        response = getattr(client, method.lower())(url)
        transaction.set_rollback(True)
    return response.status_code, response.get("Location", "")


def test_new_inbox_urls_answer_roles_and_methods(channel, administrator, operator, auditor):
    samples = url_samples(channel=channel, operator=operator)
    clients = {}
    for user in (administrator, operator, auditor):
        clients[user.role] = Client()
        clients[user.role].force_login(user)
    wrong = []
    for name, methods in ROWS.items():
        url = reverse(name, kwargs=samples.get(name, {}))
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            status, location = send(Client(), method, url)
            if (status, location) != (302, f"/login/?next={quote(url)}"):
                wrong.append((name, method, "anonymous", status))
            for role, client in clients.items():
                status, _ = send(client, method, url)
                if role == "auditor":
                    expected_ok = status == 403
                elif method in methods:
                    expected_ok = 200 <= status < 400
                else:
                    expected_ok = status == 405
                if not expected_ok:
                    wrong.append((name, method, role, status))
    assert wrong == []
