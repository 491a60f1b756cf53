"""Where ``serve`` listens and the URLs it prints: clickable, bracketed, dual-stack for ``::``."""

from __future__ import annotations

import contextlib
import socket

import pytest

from openline.config import ConfigError
from openline.core.serving import (
    BindError,
    base_url,
    bind,
    demo_host,
    ipv6_loopback_available,
    listen_from_env,
    loopback_hosts,
    origins,
    page_url,
    url_host,
)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("[::]", "[::1]"),
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("2001:DB8::5", "[2001:db8::5]"),
        ("fe80::1%eth0", "[fe80::1%25eth0]"),
        ("192.0.2.7", "192.0.2.7"),
        ("chat.example.com", "chat.example.com"),
        ("localhost", "localhost"),
    ],
)
def test_printed_hosts_are_ones_a_person_can_click(host, expected):
    assert url_host(host) == expected


def test_base_url_brackets_ipv6_and_names_a_reachable_address_for_wildcards():
    assert base_url("::", 8000) == "http://[::1]:8000"
    assert base_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert base_url("2001:db8::5", 9000) == "http://[2001:db8::5]:9000"
    assert base_url("127.0.0.1", 8000) == "http://127.0.0.1:8000"
    assert "::::" not in base_url("::", 8000)


def test_demo_page_urls_avoid_ipv6_literals_browsers_cannot_allow_to_frame_the_chat():
    # frame-ancestors takes no IPv6 address, so the demo page is opened by an IPv4 or a name.
    assert page_url("::", 8001) == "http://127.0.0.1:8001"
    assert page_url("::1", 8001) == "http://localhost:8001"
    assert page_url("0.0.0.0", 8001) == "http://127.0.0.1:8001"
    assert page_url("127.0.0.1", 8001) == "http://127.0.0.1:8001"
    assert page_url("shop.test", 8001) == "http://shop.test:8001"
    assert page_url("localhost", 8001) == "http://localhost:8001"


def test_demo_origins_are_the_loopback_aliases_the_listener_answers_on():
    assert origins("127.0.0.1", 8001) == ["http://127.0.0.1:8001", "http://localhost:8001"]
    assert origins("::", 8001) == ["http://127.0.0.1:8001", "http://localhost:8001"]
    assert origins("0.0.0.0", 8001) == ["http://127.0.0.1:8001", "http://localhost:8001"]
    assert origins("::1", 8001) == ["http://localhost:8001"]
    assert origins("192.0.2.7", 8001) == ["http://192.0.2.7:8001"]
    assert loopback_hosts("2001:db8::5") == []
    assert all("[" not in origin for host in ("::", "::1") for origin in origins(host, 1))


@pytest.mark.parametrize(
    ("openline_host", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "127.0.0.1"),
        ("[::]", "127.0.0.1"),
        ("192.0.2.7", "127.0.0.1"),
        ("2001:db8::5", "127.0.0.1"),
        ("chat.example.com", "127.0.0.1"),
        ("localhost", "127.0.0.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
    ],
)
def test_the_demo_website_listens_on_loopback_wherever_openline_listens(openline_host, expected):
    assert demo_host(openline_host) == expected


def test_the_demo_website_url_and_origins_follow_its_loopback_address():
    # What serve prints and what load_demo allows, for Openline on every interface.
    assert page_url(demo_host("0.0.0.0"), 8001) == "http://127.0.0.1:8001"
    assert page_url(demo_host("192.0.2.7"), 8001) == "http://127.0.0.1:8001"
    assert page_url(demo_host("::1"), 8001) == "http://localhost:8001"
    assert origins(demo_host("::"), 8001) == ["http://127.0.0.1:8001", "http://localhost:8001"]
    assert origins(demo_host("::1"), 8001) == ["http://localhost:8001"]


def test_listen_settings_from_the_environment():
    assert listen_from_env({}) == listen_from_env({"OPENLINE_ENV": "development"})
    default = listen_from_env({})
    assert (default.host, default.port, default.demo_site, default.demo_port) == (
        "127.0.0.1",
        8000,
        True,
        8001,
    )
    custom = listen_from_env(
        {"OPENLINE_HOST": "[::]", "OPENLINE_PORT": "9000", "OPENLINE_DEMO_PORT": "9001"}
    )
    assert (custom.host, custom.port, custom.demo_port) == ("::", 9000, 9001)
    assert listen_from_env({"OPENLINE_DEMO_SITE": "0"}).demo_site is False
    # A production deployment opens no demo shop unless asked to.
    assert listen_from_env({"OPENLINE_ENV": "production"}).demo_site is False
    assert (
        listen_from_env({"OPENLINE_ENV": "production", "OPENLINE_DEMO_SITE": "1"}).demo_site is True
    )
    for bad in (
        {"OPENLINE_PORT": "eighty"},
        {"OPENLINE_DEMO_PORT": "70000"},
        {"OPENLINE_DEMO_SITE": "maybe"},
    ):
        with pytest.raises(ConfigError):
            listen_from_env(bad)


def _answers(family: int, address: str, port: int, listener: socket.socket) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(2)
        client.connect((address, port))
        accepted, _ = listener.accept()
        accepted.close()
    return True


def test_wildcard_ipv6_listens_on_ipv4_too():
    if not ipv6_loopback_available():
        pytest.skip("this kernel has no IPv6: binding [::1] fails")
    bound = bind("::", 0)
    with contextlib.closing(bound.sock):
        port = bound.sock.getsockname()[1]
        assert bound.sock.family == socket.AF_INET6
        assert bound.dual_stack, bound.note
        assert bound.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        bound.sock.settimeout(2)
        assert _answers(socket.AF_INET, "127.0.0.1", port, bound.sock)
        assert _answers(socket.AF_INET6, "::1", port, bound.sock)


def test_ipv4_and_named_hosts_bind_and_a_taken_port_says_so():
    bound = bind("127.0.0.1", 0)
    with contextlib.closing(bound.sock):
        port = bound.sock.getsockname()[1]
        assert bound.sock.family == socket.AF_INET and not bound.dual_stack
        assert bound.sock.get_inheritable()
        with pytest.raises(BindError, match=rf"cannot listen on 127.0.0.1:{port}: .*in use"):
            bind("127.0.0.1", port)
    named = bind("localhost", 0)
    named.sock.close()
    with pytest.raises(BindError, match="cannot listen on"):
        bind("no-such-host.invalid", 0)
