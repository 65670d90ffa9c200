"""The key functions of brakes.http, on ASGI scopes and WSGI environs alike."""

from __future__ import annotations

from typing import Any

import pytest

from brakes.http import client_ip, header, path


def scope(peer: str | None, *headers: tuple[str, str], route: str = "/") -> dict[str, Any]:
    return {
        "type": "http",
        "path": route,
        "client": (peer, 4711) if peer is not None else None,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def environ(peer: str, forwarded_for: str | None = None) -> dict[str, Any]:
    env = {"REQUEST_METHOD": "GET", "REMOTE_ADDR": peer, "SCRIPT_NAME": "/app", "PATH_INFO": "/x"}
    if forwarded_for is not None:
        env["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return env


def test_without_trusted_proxies_the_key_is_the_peer_whatever_the_header_says() -> None:
    key = client_ip()
    assert key(scope("192.0.2.7", ("x-forwarded-for", "203.0.113.9"))) == "192.0.2.7"
    assert key(environ("192.0.2.7", "203.0.113.9")) == "192.0.2.7"


def test_a_trusted_proxy_is_walked_through_to_the_first_untrusted_hop() -> None:
    key = client_ip(trusted_proxies=["10.0.0.0/8", "192.0.2.1"])
    # The client wrote the leftmost entry itself; the proxies appended the rest.
    chain = "6.6.6.6, 203.0.113.9, 10.1.2.3"
    assert key(scope("192.0.2.1", ("x-forwarded-for", chain))) == "203.0.113.9"
    assert key(environ("10.0.0.1", chain)) == "203.0.113.9"
    # Several header fields are read as one list, in order.
    two_fields = scope(
        "10.0.0.1", ("x-forwarded-for", "6.6.6.6"), ("X-Forwarded-For", "203.0.113.9")
    )
    assert key(two_fields) == "203.0.113.9"
    # A peer outside the trusted networks is the client, header or not.
    assert key(scope("192.0.2.2", ("x-forwarded-for", chain))) == "192.0.2.2"
    # A trusted peer without the header is keyed as itself.
    assert key(scope("10.0.0.1")) == "10.0.0.1"
    # Only trusted hops all the way: the leftmost one.
    assert key(scope("10.0.0.1", ("x-forwarded-for", "10.0.0.9, 10.0.0.8"))) == "10.0.0.9"


def test_ports_and_brackets_in_forwarded_addresses_are_dropped() -> None:
    key = client_ip(trusted_proxies=["127.0.0.1"], ipv6_prefix=128)
    assert key(scope("127.0.0.1", ("x-forwarded-for", "203.0.113.9:5555"))) == "203.0.113.9"
    assert key(scope("127.0.0.1", ("x-forwarded-for", "[2001:db8::1]:5555"))) == "2001:db8::1"


def test_ipv6_clients_are_keyed_by_their_64_bit_prefix() -> None:
    key = client_ip()
    assert (
        key(scope("2001:db8:1:2::1")) == key(scope("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    )
    assert key(scope("2001:db8:1:3::1")) == "2001:db8:1:3::/64"
    assert client_ip(ipv6_prefix=128)(scope("2001:db8:1:2::1")) == "2001:db8:1:2::1"
    assert key(scope("::ffff:192.0.2.5")) == "192.0.2.5"


@pytest.mark.parametrize("ipv6_prefix", [64, 128])
def test_a_trusted_proxy_reported_as_an_ipv4_mapped_address_is_trusted(ipv6_prefix: int) -> None:
    """Dual-stack sockets report an IPv4 peer as ::ffff:a.b.c.d."""
    key = client_ip(trusted_proxies=["10.0.0.0/8"], ipv6_prefix=ipv6_prefix)
    assert key(scope("::ffff:10.0.0.5", ("x-forwarded-for", "203.0.113.9"))) == "203.0.113.9"
    assert key(environ("::ffff:10.0.0.5", "203.0.113.9, ::ffff:10.0.0.6")) == "203.0.113.9"
    # A mapped client is keyed as its IPv4 address, whatever the prefix.
    assert key(scope("::ffff:192.0.2.5")) == "192.0.2.5"


def test_no_peer_address_means_the_shared_tokens() -> None:
    assert client_ip()(scope(None)) is None
    assert client_ip()({"REQUEST_METHOD": "GET"}) is None


def test_header_and_path_keys_read_both_kinds_of_request() -> None:
    api_key = header("X-API-Key")
    assert api_key(scope("192.0.2.1", ("x-api-key", "k-1"))) == "k-1"
    assert api_key(scope("192.0.2.1")) is None
    assert api_key({"REQUEST_METHOD": "GET", "HTTP_X_API_KEY": "k-2"}) == "k-2"
    assert (
        header("content-type")({"REQUEST_METHOD": "GET", "CONTENT_TYPE": "text/csv"}) == "text/csv"
    )
    assert path()(scope("192.0.2.1", route="/search")) == "/search"
    assert path()(environ("192.0.2.1")) == "/app/x"


def test_bad_key_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="trusted_proxies must hold"):
        client_ip(trusted_proxies=["10.0.0.0/33"])
    with pytest.raises(TypeError, match="trusted_proxies must be"):
        client_ip(trusted_proxies=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ipv6_prefix"):
        client_ip(ipv6_prefix=129)
    with pytest.raises(TypeError, match="name must be"):
        header("")
