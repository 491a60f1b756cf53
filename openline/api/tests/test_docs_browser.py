"""The interactive API docs render in a real browser from Openline's own files, under its CSP."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path(__file__).resolve().parents[3] / "var" / "screenshots" / "api"


@pytest.mark.parametrize(("width", "height"), [(1366, 900), (390, 844)])
def test_docs_render_offline_under_the_products_csp(live_asgi, browser, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    try:
        response = page.goto(f"{live_asgi.url}/api/v1/docs")
        assert response.status == 200
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        # The operations list is rendered from the OpenAPI document.
        page.locator(".opblock").first.wait_for(state="visible")
        assert page.locator(".opblock").count() >= 20
        assert page.get_by_text("Openline API").first.is_visible()
        page.locator(".opblock-summary-path", has_text="/api/v1/agreements").first.wait_for()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"docs-{width}.png"))
        own = urlsplit(live_asgi.url).netloc
        elsewhere = [
            url
            for url in requested
            if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own
        ]
        assert elsewhere == []
        assert any(url.endswith("/static/ninja/swagger-ui-bundle.js") for url in requested)
        assert problems == []
    finally:
        context.close()
