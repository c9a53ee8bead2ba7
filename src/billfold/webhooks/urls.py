"""Where a webhook may go. An endpoint's URL is one more way for a caller to make the service send
a request, so, unless local receivers are allowed (tests, the sandbox: settings.
webhooks_local_allowed), it must be https to a public address: never loopback, a private
network, link-local (a cloud's metadata service) or any other address that is not global.

The URL is checked when it is registered, and its name resolved and checked again before each
attempt (a name may point anywhere by then), the attempt then connecting to the address that was
checked rather than resolving the name a second time (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from billfold.platform.errors import ValidationFailed
from billfold.platform.strict import shown

MAX_URL_CHARS = 2048
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(Exception):
    """A delivery's host is not (or no longer) a public address; the message names it."""


def check_url(url: str, allow_local: bool) -> str:
    """The URL, if an endpoint may be registered at it; else a 422 naming what is wrong."""
    text = url.strip()
    if not 0 < len(text) <= MAX_URL_CHARS:
        raise _bad(text, f"must be 1 to {MAX_URL_CHARS} characters")
    if not text.isascii() or any(c.isspace() or not c.isprintable() for c in text):
        raise _bad(text, "must be ASCII without spaces (write an international name in punycode)")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as error:
        raise _bad(text, f"is not a URL ({error})") from None
    if parts.scheme not in ("https", "http"):
        raise _bad(text, "must be an https URL")
    if parts.scheme == "http" and not allow_local:
        raise _bad(text, "must use https")
    if parts.username is not None or parts.password is not None:
        raise _bad(text, "must not hold a user name or password")
    if parts.fragment:
        raise _bad(text, "must not have a fragment (#...)")
    host = parts.hostname
    if not host:
        raise _bad(text, "has no host")
    if not allow_local:
        _check_public_host(text, host)
    return text


def _check_public_host(text: str, host: str) -> None:
    address = literal_address(host)
    if address is not None and not is_public(address):
        raise _bad(text, f"is {address}, not a public address")
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise _bad(text, "names this machine or a private network")
    if address is None and "." not in host:
        raise _bad(text, "must name a host by its full domain name")


def _bad(text: str, why: str) -> ValidationFailed:
    return ValidationFailed(f"url {shown(text)} {why}", field="url")


def literal_address(host: str) -> Address | None:
    """The address a host written as one stands for, in any form a resolver reads as an
    address (`127.1` and `2130706433` are 127.0.0.1 to getaddrinfo); None for a name."""
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def is_public(address: Address) -> bool:
    """A global unicast address (an IPv4 one written as IPv6 judged as itself)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class Route:
    """Where an attempt connects: the URL (its host an address that was checked, unless local
    receivers are allowed), the Host header and the TLS server name to present."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


async def route(url: str, allow_local: bool) -> Route:
    """How to reach `url` now; AddressRefused if its host is not a public address."""
    if allow_local:
        return Route(url, {}, {})
    parts = urlsplit(url)
    host = parts.hostname or ""
    address = literal_address(host)
    if address is None:
        address = await _resolve(host, parts.port or 443)
    if not is_public(address):
        raise AddressRefused(f"{host} is {address}, not a public address")
    return Route(_with_host(parts, str(address)), {"host": parts.netloc}, {"sni_hostname": host})


async def _resolve(host: str, port: int) -> Address:
    """The first address of `host`, if every address it has is public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise AddressRefused(f"{host} does not resolve ({error.strerror})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).partition("%")[0]) for info in infos]
    for address in addresses:
        if not is_public(address):
            raise AddressRefused(f"{host} resolves to {address}, not a public address")
    if not addresses:
        raise AddressRefused(f"{host} has no address")
    return addresses[0]


def _with_host(parts: SplitResult, address: str) -> str:
    netloc = f"[{address}]" if ":" in address else address
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))


def without_query(url: str) -> str:
    """The URL as events and messages show it: no query string (it may carry a token)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
