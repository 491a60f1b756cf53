"""API tokens in a real browser: create one, copy it once, use it, revoke it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from openline.accounts.models import ApiToken
from openline.conftest import login

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots" / "accounts"


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)])
def test_a_token_is_created_copied_used_and_revoked(live_asgi, browser, operator, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(10_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_asgi.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        login(page, live_asgi.url, operator.username)
        if width < 800:
            page.locator("label.nav-toggle-label").click()
        page.get_by_role("link", name="API tokens").click()
        page.get_by_role("heading", name="API tokens").wait_for()
        page.get_by_label("Name", exact=True).fill("Website backend")
        page.get_by_label("Expires").select_option("30")
        page.get_by_role("button", name="Create token").click()
        secret_field = page.get_by_label("New API token")
        secret = secret_field.input_value()
        assert secret.startswith("ol_")
        page.get_by_role("button", name="Copy").click()
        page.get_by_role("status").filter(has_text="Copied").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"tokens-created-{width}.png"), full_page=True)

        answer = httpx.get(
            f"{live_asgi.url}/api/v1/crm/items", headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 200

        # Shown once: a fresh look at the page lists the prefix only, and the last use.
        page.goto(f"{live_asgi.url}/console/api-tokens/")
        token = ApiToken.objects.get(user=operator)
        row = page.locator("#tokens tbody tr", has_text="Website backend")
        assert f"ol_{token.prefix}_…" in row.inner_text()
        assert secret not in page.content()
        assert "Active" in row.inner_text()
        page.screenshot(path=str(SHOTS / f"tokens-list-{width}.png"), full_page=True)

        row.get_by_role("link", name="Revoke").click()
        page.screenshot(path=str(SHOTS / f"tokens-revoke-{width}.png"), full_page=True)
        page.get_by_role("button", name="Revoke token").click()
        page.locator("#tokens tbody tr", has_text="Revoked").wait_for()
        answer = httpx.get(
            f"{live_asgi.url}/api/v1/crm/items", headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 401
        assert answer.json()["code"] == "revoked_token"
        assert errors == []
    finally:
        context.close()
