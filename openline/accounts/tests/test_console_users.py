"""Users in the console: a new user is an operator unless chosen otherwise, channels offer
operators (administrators only when chosen), each role's navigation and landing page."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from openline.accounts.models import Role
from openline.accounts.services import create_staff_user

pytestmark = pytest.mark.django_db


def test_a_new_users_role_defaults_to_operator(admin_client):
    page = admin_client.get("/console/users/new/").text
    select = re.search(r'<select name="role"[^>]*>(.*?)</select>', page, re.S)
    assert select
    selected = re.findall(r'<option value="(\w+)"[^>]*selected', select.group(1))
    assert selected == [Role.OPERATOR]


def _choices(html: str, container: str) -> list[str]:
    block = re.search(rf'id="{container}"[^>]*>(.*?)</div>', html, re.S)
    assert block, container
    return re.findall(r"<span>([^<]*)</span>", block.group(1))


def test_the_operators_field_offers_operators_and_hides_unchosen_administrators(
    admin_client, channel, operator, other_operator, administrator
):
    second_admin = create_staff_user(
        username="bea",
        password="a-long-password-1",
        role=Role.ADMINISTRATOR,
        display_name="Bea Boss",
    )
    create_staff_user(
        username="aud2", password="a-long-password-1", role=Role.AUDITOR, display_name="Al Auditor"
    )
    channel.operators.add(second_admin)  # an administrator chosen earlier stays visible
    page = admin_client.get(f"/console/contact-center/open-channels/{channel.pk}/general/").text
    shown = _choices(page, "operator-choices")
    assert "Otto Operator (otto)" in shown and "Olivia Operator (olivia)" in shown
    assert "Bea Boss (bea)" in shown
    assert "Ada Administrator (ada)" not in shown
    assert not any("Al Auditor" in s for s in shown)
    hidden = re.search(
        r'<details class="choices-more" id="show-administrators">(.*?)</details>', page, re.S
    )
    assert hidden and "<summary>Show administrators</summary>" in hidden.group(1)
    assert "Ada Administrator (ada)" in hidden.group(1) and "Bea Boss" not in hidden.group(1)
    # The label is a legend above the choices, explained by help text.
    assert re.search(
        r'<fieldset class="field field-choices" id="operators-field"[^>]*>\s*<legend>Operators</legend>',
        page,
    )
    assert "Administrators already see every conversation" in page


def test_choosing_a_hidden_administrator_still_saves(
    admin_client, channel, operator, administrator
):
    url = f"/console/contact-center/open-channels/{channel.pk}/general/"
    page = admin_client.get(url).text
    data = {"name": channel.name, "operators": [operator.pk, administrator.pk]}
    for field in re.findall(r'<select name="(\w+)"', page):
        option = re.search(
            rf'<select name="{field}"[^>]*>.*?<option value="([^"]*)"[^>]*selected', page, re.S
        )
        if option:
            data[field] = option.group(1)
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert set(channel.operators.all()) == {operator, administrator}


def _nav(client: Client) -> str:
    page = client.get("/console/password/").text
    match = re.search(r'<nav class="sidebar" aria-label="Main">(.*?)</nav>', page, re.S)
    assert match
    return match.group(1)


def test_an_auditors_navigation_has_no_empty_heading(auditor_client, admin_client):
    nav = _nav(auditor_client)
    headings = re.findall(r'<div class="nav-heading">([^<]*)</div>', nav)
    assert "CRM" not in headings
    # Every heading has at least one link before the next heading.
    sections = re.split(r'<div class="nav-heading">', nav)[1:]
    assert all('class="nav-link' in section for section in sections)
    assert "Obtained consents" in nav and "Customers" not in nav
    assert "CRM" in re.findall(r'<div class="nav-heading">([^<]*)</div>', _nav(admin_client))


@pytest.mark.parametrize(
    ("persona", "landing"),
    [
        ("admin_client", "/console/inbox/"),
        ("operator_client", "/console/inbox/"),
        ("auditor_client", "/console/obtained-consents/"),
    ],
)
def test_each_role_lands_where_its_work_is(request, persona, landing):
    client = request.getfixturevalue(persona)
    assert client.get("/console/", follow=True).redirect_chain[-1][0] == landing


def test_signing_in_lands_on_the_roles_page(operator, auditor):
    from openline.conftest import PASSWORD

    for user, landing in ((operator, "/console/inbox/"), (auditor, "/console/obtained-consents/")):
        client = Client()
        response = client.post(
            "/login/", {"username": user.username, "password": PASSWORD}, follow=True
        )
        assert response.redirect_chain[-1][0] == landing


def test_creating_a_channel_offers_operators_and_hides_administrators(
    admin_client, operator, administrator
):
    page = admin_client.get(reverse("openchannels:create")).text
    shown = _choices(page, "operator-choices")
    assert any("Otto Operator (otto)" in s for s in shown)
    assert not any("Ada Administrator" in s for s in shown)
    hidden = re.search(
        r'<details class="choices-more" id="show-administrators">(.*?)</details>', page, re.S
    )
    assert hidden and "Ada Administrator (ada)" in hidden.group(1)
