"""Console views answer 405 to HTTP methods they do not serve, instead of rendering the page."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from openline.accounts.models import Role

UNSERVED = ("DELETE", "PUT", "PATCH")

# Pages that only show something: a POST to them is a method they do not serve either.
READ_ONLY_PAGES = (
    "core:home",
    "accounts:users",
    "consent:agreements",
    "consent:records",
    "consent:records_export",
    "consent:record_detail",
    "consent:audit",
    "conversations:inbox",
    "crm:items",
    "crm:item",
)


def _console_urls():
    def walk(resolver, prefix="", namespace=None):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry, prefix + str(entry.pattern), entry.namespace or namespace)
            elif isinstance(entry, URLPattern):
                name = f"{namespace}:{entry.name}" if namespace else entry.name
                yield prefix + str(entry.pattern), name

    return [(route, name) for route, name in walk(get_resolver()) if route.startswith("console/")]


@pytest.fixture
def console_urls(channel, administrator, operator, give_record):
    from openline.testing.url_samples import url_samples

    samples = url_samples(channel=channel, administrator=administrator, operator=operator)
    return [(name, reverse(name, kwargs=samples.get(name, {}))) for _, name in _console_urls()]


@pytest.fixture
def give_record(channel):
    from openline.livechat.tests.helpers import consented_visitor

    return consented_visitor(channel)[0].record


def _send(client: Client, method: str, url: str):
    with transaction.atomic():
        response = client.generic(method, url)
        transaction.set_rollback(True)
    return response


def test_delete_on_a_record_page_is_refused_not_rendered(admin_client, auditor_client, give_record):
    url = f"/console/obtained-consents/{give_record.uuid}/"
    assert admin_client.get(url).status_code == 200
    for client in (admin_client, auditor_client):
        response = client.delete(url)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"
        assert str(give_record.uuid) not in response.text


def test_delete_on_a_consent_page_is_refused(admin_client, agreement):
    response = admin_client.delete(f"/console/consents/{agreement.pk}/")
    assert response.status_code == 405
    assert agreement.name not in response.text


def test_every_console_url_refuses_methods_it_does_not_serve(
    console_urls, administrator, operator, auditor
):
    clients = {"anonymous": Client()}
    for role, user in (
        (Role.ADMINISTRATOR, administrator),
        (Role.OPERATOR, operator),
        (Role.AUDITOR, auditor),
    ):
        clients[role] = Client()
        clients[role].force_login(user)
    assert len(console_urls) > 30
    wrong = []
    for name, url in console_urls:
        for method in UNSERVED:
            # The administrator may open every console page, so for them only 405 is right.
            admin = _send(clients[Role.ADMINISTRATOR], method, url).status_code
            if admin != 405:
                wrong.append((name, method, Role.ADMINISTRATOR, admin))
            for who in ("anonymous", Role.OPERATOR, Role.AUDITOR):
                status = _send(clients[who], method, url).status_code
                if status not in (302, 403, 405):
                    wrong.append((name, method, who, status))
    assert wrong == []


def test_read_only_pages_refuse_post_and_still_answer_head(console_urls, admin_client):
    urls = dict(console_urls)
    for name in READ_ONLY_PAGES:
        response = _send(admin_client, "POST", urls[name])
        assert response.status_code == 405, name
        assert "GET" in response["Allow"] and "POST" not in response["Allow"], name
        assert _send(admin_client, "HEAD", urls[name]).status_code in (200, 302), name


def test_form_pages_still_accept_get_and_post(admin_client, console_urls):
    urls = dict(console_urls)
    assert _send(admin_client, "GET", urls["accounts:user_create"]).status_code == 200
    assert _send(admin_client, "POST", urls["accounts:user_create"]).status_code == 200
