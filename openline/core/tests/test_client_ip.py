import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from openline.core.ip import client_ip

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8:ffff::/48")]


def test_direct_client_uses_the_peer_address_and_ignores_forwarded_for():
    assert client_ip("203.0.113.7", "198.51.100.1", PROXIES) == "203.0.113.7"


def test_trusted_proxy_hands_over_the_client_address():
    assert client_ip("10.0.0.5", "203.0.113.7", PROXIES) == "203.0.113.7"


def test_spoofed_left_hops_are_ignored():
    # The client wrote "1.1.1.1" itself; our proxy appended the real address.
    assert client_ip("10.0.0.5", "1.1.1.1, 203.0.113.7", PROXIES) == "203.0.113.7"


def test_chain_of_trusted_proxies_is_walked():
    assert client_ip("10.0.0.5", "203.0.113.7, 10.1.1.1, 10.2.2.2", PROXIES) == "203.0.113.7"


def test_ipv6_is_kept_in_full():
    assert (
        client_ip("2001:db8:ffff::1", "2a00:1450:4001:82b::200e", PROXIES)
        == "2a00:1450:4001:82b::200e"
    )
    assert client_ip("2a00:1450:4001:82b::200e", None, PROXIES) == "2a00:1450:4001:82b::200e"


def test_ipv4_mapped_ipv6_peer_is_reported_as_ipv4():
    assert client_ip("::ffff:203.0.113.7", None, PROXIES) == "203.0.113.7"


def test_garbage_hop_stops_at_the_last_trusted_address():
    assert client_ip("10.0.0.5", "203.0.113.7, <script>", PROXIES) == "10.0.0.5"


def test_no_peer_means_no_ip():
    assert client_ip(None, "203.0.113.7", PROXIES) == ""


@given(st.text(max_size=200))
def test_forwarded_for_from_an_untrusted_peer_never_changes_the_answer(header):
    assert client_ip("198.51.100.20", header, PROXIES) == "198.51.100.20"
