import io

import pytest
from django.core.management import CommandError, call_command

from openline.accounts.models import Role, User
from openline.conftest import PASSWORD


def test_passwords_are_hashed_with_argon2(administrator):
    assert administrator.password.startswith("argon2$")
    assert PASSWORD not in administrator.password


def test_login_and_logout(client, operator):
    response = client.post("/login/", {"username": "otto", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/console/contact-center/").status_code == 200
    assert client.get("/logout/").status_code == 405  # logout is POST-only, CSRF protected
    assert client.post("/logout/").status_code == 302
    assert client.get("/console/contact-center/").status_code == 302


def test_wrong_password_is_refused(client, operator):
    response = client.post("/login/", {"username": "otto", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


def test_login_form_requires_csrf(operator):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post("/login/", {"username": "otto", "password": PASSWORD})
    assert response.status_code == 403


def test_inactive_staff_cannot_use_the_console(operator_client, operator):
    operator.is_active = False
    operator.save()
    # A deactivated account's session no longer authenticates: back to the login page.
    response = operator_client.get("/console/contact-center/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/console/contact-center/"


def test_create_user_command(db, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-password-1\n"))
    out = io.StringIO()
    call_command("create_user", "newbie", "--role", "auditor", "--password-stdin", stdout=out)
    user = User.objects.get(username="newbie")
    assert user.role == Role.AUDITOR and user.check_password("a-long-enough-password-1")
    assert "Created auditor newbie" in out.getvalue()


def test_create_user_command_refuses_weak_password_and_duplicates(db, monkeypatch, operator):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    with pytest.raises(CommandError, match="too short"):
        call_command("create_user", "weak", "--role", "operator", "--password-stdin")
    assert not User.objects.filter(username="weak").exists()
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "otto", "--role", "operator", "--password-stdin")


def test_administrator_manages_users(admin_client, administrator):
    response = admin_client.post(
        "/console/users/new/",
        {
            "username": "newop",
            "display_name": "New Op",
            "email": "",
            "role": "operator",
            "password": "another-long-password-9",
        },
    )
    assert response.status_code == 302
    newop = User.objects.get(username="newop")
    assert newop.role == Role.OPERATOR and newop.password.startswith("argon2$")
    response = admin_client.post(
        "/console/users/new/", {"username": "bad name!", "role": "operator", "password": "x"}
    )
    assert response.status_code == 200 and b"Use letters" in response.content
    assert User.objects.count() == 2


def test_administrator_cannot_demote_themselves(admin_client, administrator):
    response = admin_client.post(
        f"/console/users/{administrator.pk}/", {"role": "operator", "is_active": "on"}
    )
    assert response.status_code == 200
    administrator.refresh_from_db()
    assert administrator.role == Role.ADMINISTRATOR


def test_unknown_user_is_404(admin_client):
    assert admin_client.get("/console/users/999999/").status_code == 404
