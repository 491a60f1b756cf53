"""Staff change their own password; administrators reset another user's to a temporary one."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from openline.accounts.models import User
from openline.conftest import PASSWORD

NEW_PASSWORD = "a-brand-new-passphrase-77"
CHANGE_URL = "/console/password/"


def _signed_in(username: str, password: str = PASSWORD) -> Client:
    client = Client()
    response = client.post("/login/", {"username": username, "password": password})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def _change(client: Client, old: str, new1: str, new2: str | None = None):
    return client.post(
        CHANGE_URL,
        {
            "old_password": old,
            "new_password1": new1,
            "new_password2": new1 if new2 is None else new2,
        },
    )


def test_staff_change_their_own_password_keep_this_session_and_end_the_others(operator):
    here, elsewhere = _signed_in("otto"), _signed_in("otto")
    page = here.get(CHANGE_URL)
    assert page.status_code == 200
    assert b'name="old_password"' in page.content and b'name="new_password2"' in page.content

    response = _change(here, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/console/"
    operator.refresh_from_db()
    assert operator.check_password(NEW_PASSWORD) and not operator.check_password(PASSWORD)
    assert here.get("/console/contact-center/").status_code == 200  # this session lives on
    other = elsewhere.get("/console/contact-center/")
    assert other.status_code == 302 and other["Location"].startswith("/login/")
    assert (
        Client().post("/login/", {"username": "otto", "password": NEW_PASSWORD}).status_code == 302
    )


@pytest.mark.parametrize(
    ("old", "new1", "new2", "error"),
    [
        ("not-my-password", NEW_PASSWORD, None, "Your old password was entered incorrectly"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "didn’t match"),
        (PASSWORD, "short", None, "too short"),
        (PASSWORD, "1234567890123", None, "entirely numeric"),
        (PASSWORD, PASSWORD, None, "different from the current one"),
    ],
)
def test_a_bad_password_change_is_refused_with_a_reason(auditor, old, new1, new2, error):
    client = _signed_in("audrey")
    response = _change(client, old, new1, new2)
    assert response.status_code == 200
    assert error in response.content.decode()
    auditor.refresh_from_db()
    assert auditor.check_password(PASSWORD)


def test_every_console_page_links_to_change_password(operator_client, admin_client, operator):
    for client, url in (
        (operator_client, "/console/contact-center/"),
        (admin_client, "/console/users/"),
    ):
        assert f'href="{CHANGE_URL}"' in client.get(url).content.decode()
    users = admin_client.get("/console/users/").content.decode()
    assert f'href="/console/users/{operator.pk}/reset-password/"' in users


def test_administrator_resets_a_password_and_the_user_must_change_it_at_next_login(
    admin_client, administrator, operator
):
    old_session = _signed_in("otto")
    url = f"/console/users/{operator.pk}/reset-password/"
    confirm = admin_client.get(url)
    assert confirm.status_code == 200 and b"Reset password" in confirm.content
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD), "a GET must not reset anything"

    response = admin_client.post(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    temporary = re.search(
        r'<code id="temporary-password">([^<]+)</code>', response.content.decode()
    ).group(1)
    assert len(temporary) >= 16
    operator.refresh_from_db()
    assert operator.must_change_password and operator.check_password(temporary)
    # Shown once: nowhere in the administrator's session or on the next page.
    assert temporary not in str(dict(admin_client.session))
    assert temporary not in admin_client.get("/console/users/").content.decode()
    # The old password and the old session are gone.
    assert Client().post("/login/", {"username": "otto", "password": PASSWORD}).status_code == 200
    assert old_session.get("/console/contact-center/")["Location"].startswith("/login/")

    client = Client()
    login = client.post("/login/", {"username": "otto", "password": temporary})
    assert login.status_code == 302 and login["Location"] == CHANGE_URL
    for page in ("/console/", "/console/contact-center/", "/console/crm/"):
        blocked = client.get(page)
        assert blocked.status_code == 302 and blocked["Location"] == CHANGE_URL, page
    api = client.get("/api/v1/crm/items")
    assert api.status_code == 403
    assert "change it in the console" in api.json()["detail"]
    forced = client.get(CHANGE_URL)
    assert forced.status_code == 200 and b"An administrator reset your password" in forced.content

    assert _change(client, temporary, NEW_PASSWORD).status_code == 302
    operator.refresh_from_db()
    assert not operator.must_change_password
    assert client.get("/console/contact-center/").status_code == 200
    assert client.get("/api/v1/crm/items").status_code == 200


def test_an_administrator_does_not_reset_their_own_password_here(admin_client, administrator):
    response = admin_client.post(f"/console/users/{administrator.pk}/reset-password/")
    assert response.status_code == 200 and b"This is your own account" in response.content
    administrator.refresh_from_db()
    assert administrator.check_password(PASSWORD) and not administrator.must_change_password


def test_only_administrators_reset_passwords(operator_client, auditor_client, administrator):
    for client in (operator_client, auditor_client):
        response = client.post(f"/console/users/{administrator.pk}/reset-password/")
        assert response.status_code == 403
    administrator.refresh_from_db()
    assert administrator.check_password(PASSWORD)


def test_reset_of_an_unknown_user_is_404(admin_client):
    assert admin_client.post("/console/users/999999/reset-password/").status_code == 404
    assert not User.objects.filter(must_change_password=True).exists()


def test_guessing_the_old_password_is_throttled_like_signing_in(operator):
    client = _signed_in("otto")
    for _ in range(5):
        assert _change(client, "a-wrong-guess-123", NEW_PASSWORD).status_code == 200
    response = _change(client, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    operator.refresh_from_db()
    assert operator.check_password(PASSWORD)
