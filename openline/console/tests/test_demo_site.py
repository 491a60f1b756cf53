"""The demo website: ``load_demo`` allows it on the demo channel, and it embeds that channel's chat.

The site runs in a thread here on a socket bound like ``serve`` binds it; the pages are read over
real HTTP with the Host headers browsers send.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict

from openline.accounts.models import User
from openline.consent.models import Agreement
from openline.console.demo_site import (
    DEMO_CHANNEL_NAME,
    DEMO_MARKER,
    DemoServer,
    Openline,
    demo_channel,
)
from openline.core.serving import bind
from openline.livechat.origins import CONFIG_KEY, allowed_origins
from openline.openchannels.models import Connector, OpenChannel
from openline.openchannels.services import create_open_channel, set_connector

SCRIPT = re.compile(r'<script src="([^"]+)" async></script>')


@pytest.fixture
def demo_env(monkeypatch, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    for name in ("OPENLINE_ENV", "OPENLINE_DEMO_SITE", "OPENLINE_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENLINE_HOST", "127.0.0.1")
    monkeypatch.setenv("OPENLINE_PORT", "8000")
    monkeypatch.setenv("OPENLINE_DEMO_PORT", "8001")
    return monkeypatch


def channel_origins() -> list[str]:
    return allowed_origins(OpenChannel.objects.prefetch_related("connectors").get())


def test_load_demo_allows_the_demo_website_on_the_demo_channel(db, demo_env, capsys):
    call_command("load_demo")
    assert channel_origins() == ["http://127.0.0.1:8001", "http://localhost:8001"]
    assert "also opens on the demo website" in capsys.readouterr().out
    channel = demo_channel()
    assert channel is not None and channel.name == DEMO_CHANNEL_NAME
    assert channel.title == "Harbour Coffee Roasters"
    # A website an administrator added stays; serve moved to every interface: no duplicates,
    # and no IPv6 literal (browsers refuse them in frame-ancestors).
    set_connector(
        actor=User.objects.get(username="admin"),
        channel=channel,
        kind="livechat",
        is_enabled=True,
        # As the console's allowed-websites form does: the rest of the config stays.
        config={
            **channel.connector("livechat").config,
            CONFIG_KEY: [*allowed_origins(channel), "https://shop.example.com"],
        },
    )
    demo_env.setenv("OPENLINE_HOST", "::")
    demo_env.setenv("OPENLINE_DEMO_PORT", "9001")
    call_command("load_demo")
    call_command("load_demo")
    assert channel_origins() == [
        "http://127.0.0.1:8001",
        "http://localhost:8001",
        "https://shop.example.com",
        "http://127.0.0.1:9001",
        "http://localhost:9001",
    ]


def snapshot() -> dict:
    """Every row load_demo may write, with every field (updated_at included)."""
    return {
        "users": [model_to_dict(u) for u in User.objects.order_by("pk")],
        "agreements": list(Agreement.objects.order_by("pk").values()),
        "channels": list(OpenChannel.objects.order_by("pk").values()),
        "operators": list(OpenChannel.operators.through.objects.order_by("pk").values()),
        "connectors": list(Connector.objects.order_by("pk").values()),
    }


def test_a_second_load_demo_changes_nothing(db, demo_env, caplog):
    with caplog.at_level(logging.INFO, logger="openline.audit"):
        call_command("load_demo")
    first = snapshot()
    changes = [r.getMessage() for r in caplog.records if r.name.startswith("openline.audit")]
    # The first run wrote the demo channel's look and websites through the audited services.
    assert any("appearance changed by admin" in m for m in changes), changes
    assert any("allowed websites changed by admin" in m for m in changes), changes
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="openline.audit"):
        call_command("load_demo")
    assert snapshot() == first
    assert [r.getMessage() for r in caplog.records if r.name.startswith("openline.audit")] == []
    (connector,) = first["connectors"]
    assert connector["config"] == {
        DEMO_MARKER: True,
        CONFIG_KEY: ["http://127.0.0.1:8001", "http://localhost:8001"],
    }


def test_a_channel_an_administrator_named_website_is_left_alone(db, demo_env, administrator):
    def theirs() -> dict:
        return {
            "channel": OpenChannel.objects.filter(pk=own.pk).values().get(),
            "connectors": list(Connector.objects.filter(channel=own).values()),
        }

    own = create_open_channel(actor=administrator, name=DEMO_CHANNEL_NAME, connectors=["livechat"])
    set_connector(
        actor=administrator,
        channel=own,
        kind="livechat",
        is_enabled=True,
        config={CONFIG_KEY: ["https://www.example.com"]},
    )
    before = theirs()
    call_command("load_demo")
    call_command("load_demo")
    assert theirs() == before
    demo = demo_channel()
    assert demo is not None and demo.pk != own.pk
    assert demo.title == "Harbour Coffee Roasters"
    assert allowed_origins(demo) == ["http://127.0.0.1:8001", "http://localhost:8001"]
    # One named "Website" after the demo data, too: load_demo and the demo site keep to theirs.
    later = create_open_channel(
        actor=administrator, name=DEMO_CHANNEL_NAME, connectors=["livechat"]
    )
    call_command("load_demo")
    assert allowed_origins(OpenChannel.objects.get(pk=later.pk)) == []
    assert OpenChannel.objects.get(pk=later.pk).display_name == ""
    assert demo_channel().pk == demo.pk


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", ["http://127.0.0.1:8001", "http://localhost:8001"]),
        ("192.0.2.7", ["http://127.0.0.1:8001", "http://localhost:8001"]),
        ("chat.example.com", ["http://127.0.0.1:8001", "http://localhost:8001"]),
        ("::1", ["http://localhost:8001"]),
    ],
)
def test_load_demo_allows_the_loopback_address_the_demo_website_listens_on(
    db, demo_env, host, expected
):
    # Wherever Openline listens, serve starts the demo website on loopback only.
    demo_env.setenv("OPENLINE_HOST", host)
    call_command("load_demo")
    assert channel_origins() == expected


def test_the_demo_website_never_starts_in_production(db, demo_env, settings):
    settings.CONFIG = dataclasses.replace(settings.CONFIG, env="production")
    for args in ((), ("--port", "0")):
        with pytest.raises(CommandError) as refused:
            call_command("demo_site", *args)
        assert str(refused.value) == (
            "The demo website never runs in production (OPENLINE_ENV=production)."
        )
    # load_demo does not allow it on the demo channel either.
    demo_env.setenv("OPENLINE_DEMO_SITE", "1")
    call_command("load_demo")
    assert channel_origins() == []


def test_load_demo_allows_nothing_when_the_demo_website_is_off(db, demo_env):
    demo_env.setenv("OPENLINE_DEMO_SITE", "0")
    call_command("load_demo")
    assert channel_origins() == []


@contextlib.contextmanager
def running_demo_site(openline: Openline):
    bound = bind("127.0.0.1", 0)
    server = DemoServer(bound.sock, openline)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{bound.sock.getsockname()[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str, host: str | None = None) -> httpx.Response:
    return httpx.get(url, headers={"Host": host} if host else {}, timeout=10)


def test_the_demo_pages_embed_the_demo_channel_snippet_where_it_is_allowed(
    transactional_db, demo_env, settings
):
    call_command("load_demo")
    channel = demo_channel()
    assert channel is not None
    with running_demo_site(Openline("127.0.0.1", 8000)) as site:
        port = site.rsplit(":", 1)[1]
        # Allowed here, as load_demo would for this port.
        set_connector(
            actor=User.objects.get(username="admin"),
            channel=channel,
            kind="livechat",
            is_enabled=True,
            config={DEMO_MARKER: True, CONFIG_KEY: [site, f"http://localhost:{port}"]},
        )
        for path in ("/", "/delivery/"):
            page = get(site + path)
            assert page.status_code == 200
            assert page.headers["content-type"] == "text/html; charset=utf-8"
            assert SCRIPT.findall(page.text) == [f"http://127.0.0.1:8000/widget/{channel.code}.js"]
            assert "Openline console" in page.text and "not among" not in page.text
        # Opened as localhost: the chat comes from localhost too, so both stay on one site.
        page = get(site + "/", host=f"localhost:{port}")
        assert SCRIPT.findall(page.text) == [f"http://localhost:8000/widget/{channel.code}.js"]
        # An address the channel does not allow says so, escaped, and names the settings page.
        page = get(site + "/", host=f"shop.test:{port}")
        assert f"This address (http://shop.test:{port})" in page.text
        assert f"/contact-center/live-chat/{channel.pk}/" in page.text
        page = get(site + "/", host='"><script>alert(1)</script>')
        assert "<script>alert" not in page.text
        # Browsers refuse IPv6 literals in frame-ancestors: no chat, a pointer to a working URL.
        page = get(site + "/", host=f"[::1]:{port}")
        assert SCRIPT.findall(page.text) == []
        assert f'href="http://127.0.0.1:{port}/"' in page.text
        assert get(site + "/nope").status_code == 404
        assert get(site + "/favicon.ico").headers["content-type"] == "image/svg+xml"
        # With a public URL the snippet points there, like the console's snippet.
        settings.OPENLINE_PUBLIC_URL = "https://chat.example.com/"
        assert SCRIPT.findall(get(site + "/").text) == [
            f"https://chat.example.com/widget/{channel.code}.js"
        ]


def test_without_the_demo_channel_the_site_says_how_to_set_it_up(transactional_db, administrator):
    # An administrator's own "Website" channel, even allowed here, is not the demo's to embed.
    own = create_open_channel(actor=administrator, name=DEMO_CHANNEL_NAME, connectors=["livechat"])
    with running_demo_site(Openline("127.0.0.1", 8000)) as site:
        set_connector(
            actor=administrator,
            channel=own,
            kind="livechat",
            is_enabled=True,
            config={CONFIG_KEY: [site]},
        )
        page = get(site + "/")
    assert page.status_code == 200
    assert SCRIPT.findall(page.text) == []
    assert "python manage.py load_demo" in page.text


def test_a_demo_database_from_before_the_marker_gets_a_marked_demo_channel(db, demo_env):
    """Demo users already there but no marked channel (an older load_demo): one is added."""
    from openline.console.demo_site import marked_demo_channel

    call_command("load_demo")
    demo = marked_demo_channel()
    connector = demo.connector("livechat")
    connector.config = {k: v for k, v in connector.config.items() if k != DEMO_MARKER}
    connector.save(update_fields=["config"])
    assert marked_demo_channel() is None
    users = User.objects.count()

    call_command("load_demo")

    assert marked_demo_channel() is not None
    assert User.objects.count() == users  # the same logins, nobody new
    assert OpenChannel.objects.get(pk=demo.pk).name == demo.name  # the old one is kept as it was
