"""Keys for per-client limits in HTTP apps, and what `LoadShed` counts.

A key function takes the request as the server gives it, an ASGI `scope` or a
WSGI `environ`, and returns the key of the bucket that request draws from.
The same function serves both kinds of app::

    from brakes import TokenBucket
    from brakes.asgi import LoadShed
    from brakes.http import client_ip

    app = LoadShed(app, bucket=TokenBucket(10, burst=20, max_wait=0, max_keys=100_000),
                   key=client_ip(trusted_proxies=["10.0.0.0/8"]))

A key of None draws from the bucket's shared, unkeyed tokens: requests
without an API key share one limit, for instance.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Key", "KeyFunction", "LoadShedStats", "client_ip", "header", "path"]

Key = str | bytes | int | None
KeyFunction = Callable[[Mapping[str, Any]], Key]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class LoadShedStats:
    """What a `LoadShed` has done since it was made.

    `admitted` requests reached the app; `rate_limited` got 429 and
    `overloaded` got 503; `exempt` went by on an exempt path. In shadow mode
    every request is admitted, and `shadow_rate_limited` / `shadow_overloaded`
    count those that would have got 429 / 503.
    """

    admitted: int
    rate_limited: int
    overloaded: int
    exempt: int
    shadow_rate_limited: int
    shadow_overloaded: int


def _is_wsgi(request: Mapping[str, Any]) -> bool:
    return "REQUEST_METHOD" in request


def _peer(request: Mapping[str, Any]) -> str | None:
    if _is_wsgi(request):
        address = request.get("REMOTE_ADDR")
        return address if address else None
    client = request.get("client")
    return client[0] if client else None


def _asgi_header(request: Mapping[str, Any], name: bytes) -> str | None:
    values = [value for field, value in request.get("headers", ()) if field.lower() == name]
    if not values:
        return None
    return b", ".join(values).decode("latin-1")


def _wsgi_header(request: Mapping[str, Any], environ_name: str) -> str | None:
    value = request.get(environ_name)
    return value if isinstance(value, str) else None


def _environ_name(name: str) -> str:
    upper = name.upper().replace("-", "_")
    if upper in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return upper
    return "HTTP_" + upper


def header(name: str) -> KeyFunction:
    """A key function: the value of the request header `name` (several
    fields of that name joined with ", "), or None when it is absent.

    >>> from brakes.http import header
    >>> api_key = header("x-api-key")
    >>> api_key({"type": "http", "headers": [(b"x-api-key", b"k-123")]})
    'k-123'
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a header name (a non-empty str), got {name!r}")
    asgi_name = name.lower().encode("latin-1")
    environ_name = _environ_name(name)

    def header_key(request: Mapping[str, Any]) -> Key:
        if _is_wsgi(request):
            return _wsgi_header(request, environ_name)
        return _asgi_header(request, asgi_name)

    header_key.__qualname__ = header_key.__name__ = f"header({name!r})"
    return header_key


def path() -> KeyFunction:
    """A key function: the request's path, so that each endpoint gets its own
    tokens (the query string is not part of it)."""

    def path_key(request: Mapping[str, Any]) -> Key:
        if _is_wsgi(request):
            return str(request.get("SCRIPT_NAME", "")) + str(request.get("PATH_INFO", ""))
        return str(request.get("path", ""))

    path_key.__qualname__ = path_key.__name__ = "path()"
    return path_key


def _networks(trusted_proxies: object) -> tuple[_Network, ...]:
    if isinstance(trusted_proxies, str):
        trusted_proxies = (trusted_proxies,)
    if not isinstance(trusted_proxies, Iterable):
        raise TypeError(
            f"trusted_proxies must be a sequence of addresses or CIDR networks, "
            f"got {trusted_proxies!r}"
        )
    networks = []
    for proxy in trusted_proxies:
        try:
            networks.append(ipaddress.ip_network(proxy, strict=False))
        except (TypeError, ValueError):
            raise ValueError(
                f"trusted_proxies must hold IP addresses or CIDR networks, got {proxy!r}"
            ) from None
    return tuple(networks)


def _hop_address(hop: str) -> str:
    """An address from `X-Forwarded-For` without a port or brackets, as
    proxies write "[2001:db8::1]:4711" or "192.0.2.1:4711"."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.split(":", 1)[0]
    return hop


def client_ip(trusted_proxies: Iterable[str] = (), *, ipv6_prefix: int = 64) -> KeyFunction:
    """A key function: the address of the client.

    That is the address of the peer that connected, unless the peer is one of
    `trusted_proxies` (addresses or CIDR networks such as "10.0.0.0/8"). Then
    the key is the first address in `X-Forwarded-For`, read from the right,
    that is not itself a trusted proxy. The header is never read from any other
    peer: a client could write in it whatever key it likes.

    IPv6 clients are keyed by their `/ipv6_prefix` network (64 by default), as
    one host commonly holds a whole /64 and could otherwise take a new key per
    request. Pass `ipv6_prefix=128` to key each address apart. An IPv4 address
    that a dual-stack socket reports as `::ffff:a.b.c.d` is that IPv4 address,
    as a key and when matched against `trusted_proxies`.

    Keys are strings, or None when the server gives no peer address (a unix
    socket): such requests share the unkeyed tokens.
    """
    networks = _networks(trusted_proxies)
    if isinstance(ipv6_prefix, bool) or not isinstance(ipv6_prefix, int):
        raise TypeError(f"ipv6_prefix must be an integer, got {ipv6_prefix!r}")
    if not 0 <= ipv6_prefix <= 128:
        raise ValueError(f"ipv6_prefix must be from 0 to 128, got {ipv6_prefix!r}")

    @functools.lru_cache(maxsize=4096)
    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        # A dual-stack socket reports an IPv4 peer as `::ffff:a.b.c.d`.
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        return any(
            ip in network or (mapped is not None and mapped in network) for network in networks
        )

    @functools.lru_cache(maxsize=4096)
    def ipv6_key(address: str) -> str:
        try:
            ip = ipaddress.IPv6Address(address)
        except ValueError:
            return address
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        if ipv6_prefix == 128:
            return address
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))

    def key_of(address: str) -> str:
        if ":" in address:
            return ipv6_key(address)
        return address

    def forwarded_for(request: Mapping[str, Any]) -> str | None:
        if _is_wsgi(request):
            return _wsgi_header(request, "HTTP_X_FORWARDED_FOR")
        return _asgi_header(request, b"x-forwarded-for")

    def client_ip_key(request: Mapping[str, Any]) -> Key:
        peer = _peer(request)
        if peer is None:
            return None
        if not networks or not is_trusted(peer):
            return key_of(peer)
        chain = forwarded_for(request)
        if not chain:
            return key_of(peer)
        hops = [hop.strip() for hop in chain.split(",")]
        # Each hop was written by the one to its right; walk in from the peer
        # while the writer is trusted.
        address = peer
        for hop in reversed(hops):
            if not hop:
                continue
            address = _hop_address(hop)
            if not is_trusted(address):
                break
        return key_of(address)

    client_ip_key.__qualname__ = client_ip_key.__name__ = "client_ip()"
    return client_ip_key
