"""Every console URL is checked against every role (and an anonymous visitor).

The table below names, for each console URL, the arguments to reach it; a
console URL missing from the table fails the suite, so new views cannot slip
past the role check.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from openline.accounts.models import Role

PUBLIC_PREFIXES = (
    "/login/",
    "/logout/",
    "/healthz",
    "/readyz",
    "/static/",
    "/widget/",
    "/api/",
    "/c/",
    "/livechat/",
    "/webhooks/",
)


def _walk(resolver, prefix="", namespace=None):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            yield from _walk(entry, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}:{entry.name}" if namespace and entry.name else entry.name
            yield prefix + str(entry.pattern), name, entry.callback


def console_views():
    """All URL patterns under /console/, with their names and callbacks."""
    return [
        (route, name, cb)
        for route, name, cb in _walk(get_resolver())
        if route.startswith("console/")
    ]


@pytest.fixture
def samples(channel, administrator, operator):
    """Arguments for each console URL that takes any; extended by each app."""
    from openline.testing.url_samples import url_samples

    return url_samples(channel=channel, administrator=administrator, operator=operator)


def test_every_console_view_declares_its_roles():
    missing = [
        name or route for route, name, cb in console_views() if not hasattr(cb, "allowed_roles")
    ]
    assert missing == [], f"console views without role_required: {missing}"


def test_every_console_url_answers_each_role_as_declared(samples, administrator, operator, auditor):
    users = {Role.ADMINISTRATOR: administrator, Role.OPERATOR: operator, Role.AUDITOR: auditor}
    checked = 0
    for route, name, callback in console_views():
        assert name, f"console route {route} has no name"
        kwargs = samples.get(name, {})
        url = reverse(name, kwargs=kwargs)
        anonymous = Client().get(url)
        assert anonymous.status_code == 302 and "/login/" in anonymous["Location"], (
            url,
            anonymous.status_code,
        )
        for role, user in users.items():
            client = Client()
            client.force_login(user)
            response = client.get(url)
            if role in callback.allowed_roles:
                assert response.status_code in (200, 302, 405), (url, role, response.status_code)
            else:
                assert response.status_code == 403, (url, role, response.status_code)
            checked += 1
    assert checked >= 3 * 10


def test_no_self_registration(client, db):
    assert client.get("/register/").status_code == 404
    assert client.get("/signup/").status_code == 404
    assert client.get("/accounts/signup/").status_code == 404
