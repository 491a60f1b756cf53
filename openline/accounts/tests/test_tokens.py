"""API tokens: the console page, the stored hash, and what a token may do on the API."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from openline.accounts import api_tokens
from openline.accounts.api_tokens import create_token
from openline.accounts.models import ApiToken

pytestmark = pytest.mark.django_db

RECORDS = "/api/v1/consents/records"
ITEMS = "/api/v1/crm/items"


def bearer(secret: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_creating_a_token_shows_the_secret_once_and_stores_only_its_hash(operator_client, operator):
    response = operator_client.post(
        reverse("accounts:tokens"), {"name": "Website backend", "expiry": "30"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    secret = re.search(r'value="(ol_[0-9a-f]{8}_[^"]+)"', html).group(1)
    token = ApiToken.objects.get(user=operator)
    assert secret.startswith(f"ol_{token.prefix}_")
    raw = secret.split("_", 2)[2]
    assert token.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    assert not token.read_only
    assert timedelta(days=29) < token.expires_at - timezone.now() <= timedelta(days=30)
    # The list shows the prefix, never the secret again.
    listing = operator_client.get(reverse("accounts:tokens")).content.decode()
    assert f"ol_{token.prefix}_…" in listing
    assert raw not in listing
    assert "Website backend" in listing
    assert response["Cache-Control"].find("no-store") >= 0


def test_a_token_acts_with_its_owners_role(operator, auditor, administrator):
    operator_secret = create_token(operator, "op").secret
    auditor_secret = create_token(auditor, "au").secret
    admin_secret = create_token(administrator, "ad").secret
    client = Client()
    # Operators may not read the consent registry; auditors and administrators may.
    assert client.get(RECORDS, **bearer(operator_secret)).status_code == 403
    assert client.get(RECORDS, **bearer(auditor_secret)).status_code == 200
    assert client.get(RECORDS, **bearer(admin_secret)).status_code == 200
    # CRM items: staff who work with clients, not auditors.
    assert client.get(ITEMS, **bearer(operator_secret)).status_code == 200
    assert client.get(ITEMS, **bearer(auditor_secret)).status_code == 403


def test_read_only_tokens_read_but_do_not_write(administrator):
    secret = create_token(administrator, "warehouse", read_only=True).secret
    client = Client()
    assert client.get("/api/v1/agreements", **bearer(secret)).status_code == 200
    response = client.post(
        "/api/v1/agreements",
        {"name": "Newsletter", "text": "We send news."},
        content_type="application/json",
        **bearer(secret),
    )
    assert response.status_code == 403
    assert response.json()["code"] == "read_only_token"
    writable = create_token(administrator, "backend").secret
    response = client.post(
        "/api/v1/agreements",
        {"name": "Newsletter", "text": "We send news."},
        content_type="application/json",
        **bearer(writable),
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("revoked", "revoked_token"),
        ("expired", "expired_token"),
        ("deactivated", "inactive_user"),
        ("wrong_secret", "invalid_token"),
        ("unknown", "invalid_token"),
    ],
)
def test_refused_tokens_get_401_with_a_code_saying_why(administrator, change, code):
    made = create_token(administrator, "old")
    secret = made.secret
    if change == "revoked":
        api_tokens.revoke_token(made.token)
    elif change == "expired":
        ApiToken.objects.filter(pk=made.token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    elif change == "deactivated":
        administrator.is_active = False
        administrator.save()
    elif change == "wrong_secret":
        secret = secret[:-3] + ("aaa" if not secret.endswith("aaa") else "bbb")
    else:
        secret = "ol_00000000_" + "x" * 43
    response = Client().get(RECORDS, **bearer(secret))
    assert response.status_code == 401
    assert response.json()["code"] == code
    assert response["WWW-Authenticate"] == "Bearer"
    assert ApiToken.objects.get(pk=made.token.pk).last_used_at is None


def test_last_used_is_written_at_most_once_a_minute(administrator, django_assert_num_queries):
    made = create_token(administrator, "busy")
    client = Client()
    assert client.get(RECORDS, **bearer(made.secret)).status_code == 200
    first = ApiToken.objects.get(pk=made.token.pk).last_used_at
    assert first is not None
    assert client.get(RECORDS, **bearer(made.secret)).status_code == 200
    assert ApiToken.objects.get(pk=made.token.pk).last_used_at == first
    # A minute later the next request stamps it again.
    ApiToken.objects.filter(pk=made.token.pk).update(last_used_at=first - timedelta(seconds=61))
    assert client.get(RECORDS, **bearer(made.secret)).status_code == 200
    assert ApiToken.objects.get(pk=made.token.pk).last_used_at > first - timedelta(seconds=1)


def test_token_requests_need_no_csrf_but_session_writes_do(administrator):
    body = {"name": "Newsletter", "text": "We send news."}
    token_client = Client(enforce_csrf_checks=True)
    secret = create_token(administrator, "backend").secret
    response = token_client.post(
        "/api/v1/agreements", body, content_type="application/json", **bearer(secret)
    )
    assert response.status_code == 201, response.content
    session = Client(enforce_csrf_checks=True)
    session.force_login(administrator)
    response = session.post("/api/v1/agreements", body, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    # With the cookie and header, as the console's JavaScript sends them, it goes through.
    session.get(reverse("accounts:tokens"))
    csrf = session.cookies["csrftoken"].value
    response = session.post(
        "/api/v1/agreements", body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf
    )
    assert response.status_code == 201, response.content


def test_a_token_never_falls_back_to_the_session(admin_client):
    response = admin_client.get(RECORDS, **bearer("ol_nothing"))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert admin_client.get(RECORDS).status_code == 200


def test_users_revoke_their_own_tokens_only(operator_client, operator, administrator):
    mine = create_token(operator, "mine")
    theirs = create_token(administrator, "theirs")
    url = reverse("accounts:token_revoke")
    confirm = operator_client.get(url, {"token": mine.token.pk})
    assert confirm.status_code == 200
    assert "mine" in confirm.content.decode()
    assert operator_client.post(url, {"token": theirs.token.pk}).status_code == 302
    theirs.token.refresh_from_db()
    assert theirs.token.revoked_at is None
    assert operator_client.get(url, {"token": theirs.token.pk})["Location"].endswith(
        reverse("accounts:tokens")
    )
    assert operator_client.post(url, {"token": mine.token.pk}).status_code == 302
    mine.token.refresh_from_db()
    assert mine.token.revoked_at is not None
    listing = operator_client.get(reverse("accounts:tokens")).content.decode()
    assert "Revoked" in listing
    assert "theirs" not in listing
    assert Client().get(RECORDS, **bearer(mine.secret)).json()["code"] == "revoked_token"


def test_a_read_only_token_with_expiry_never_is_listed_as_such(auditor_client, auditor):
    response = auditor_client.post(
        reverse("accounts:tokens"),
        {"name": "Privacy tooling", "read_only": "on", "expiry": "never"},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=auditor)
    assert token.read_only and token.expires_at is None
    html = auditor_client.get(reverse("accounts:tokens")).content.decode()
    assert "Read-only" in html and "Never" in html


def test_a_nameless_token_is_refused_with_the_form_again(operator_client, operator):
    response = operator_client.post(reverse("accounts:tokens"), {"name": "", "expiry": "90"})
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiToken.objects.filter(user=operator).exists()


def test_a_reset_password_blocks_the_owners_tokens_until_changed(administrator):
    secret = create_token(administrator, "backend").secret
    administrator.must_change_password = True
    administrator.save()
    response = Client().get(RECORDS, **bearer(secret))
    assert response.status_code == 403
    assert response.json()["code"] == "password_change_required"
