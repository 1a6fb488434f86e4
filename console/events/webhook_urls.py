"""Where a webhook may be sent: an http(s) URL whose host resolves, once, to public addresses only.

``check_url()`` resolves the host once and checks every address, including the IPv4 address inside
IPv4-mapped, IPv4-compatible and NAT64 IPv6 forms; the sender then connects to exactly those addresses, so a
DNS answer that changes in between (rebinding) cannot point a signed request at the site's own network.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx

from console.events.conf import events_settings


class UnsafeURL(ValueError):
    """A webhook URL that is malformed, not http(s), or resolves to an address we must not call."""


Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 forms that carry an IPv4 address in their last 32 bits, reached through a translator or tunnel:
# IPv4-compatible (::a.b.c.d, deprecated) and NAT64's well-known prefix (RFC 6052). IPv4-mapped addresses have
# their own property on IPv6Address.
IPV4_IN_LAST_32_BITS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))
# Never public, whichever IPv4 address they carry. NAT64's local-use prefix (RFC 8215) only reaches the
# operator's own network, at a place in the address that depends on the operator's prefix length. 6to4
# (2002::/16, deprecated by RFC 7526) goes through whichever relay is nearest; Python 3.13 calls all of it
# non-global while 3.12 calls all of it global, and refusing it keeps both the same.
NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("2002::/16"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, IPv4-compatible, NAT64), if it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in prefix for prefix in IPV4_IN_LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether an address is on the public internet, an IPv6 one judged by the IPv4 address it carries too.

    ``is_global`` alone is not enough: Python 3.12 calls ``::127.0.0.1``, ``64:ff9b::a00:1`` and
    ``2002:c0a8:101::`` global, yet they lead to loopback, 10.0.0.1 and 192.168.1.1.
    """
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in prefix for prefix in NEVER_PUBLIC):
            return False
        inner = embedded_ipv4(address)
        return inner is None or is_public(inner)
    return True


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host had when it was checked: the only ones an attempt connects to."""

    url: httpx.URL
    addresses: tuple[Address, ...]


def _resolve(host: str, port: int) -> tuple[Address, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"The host {host!r} does not resolve.") from exc
    # The resolver's order is the order a connecting socket would try them in.
    return tuple(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def check_url(url: str) -> Target:
    """Resolve the URL's host once and check every address it has.

    Refuses malformed and non-http(s) URLs and, unless ``WEBHOOK_ALLOW_PRIVATE``, any address that is not
    public (see ``is_public``).
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeURL(f"This is not a valid URL ({exc}).") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeURL("Use an http:// or https:// URL with a host name.")
    port = parsed.port if parsed.port is not None else 443 if parsed.scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise UnsafeURL(f"The port must be between 1 and 65535, not {port}.")
    host = parsed.raw_host.decode("ascii")
    try:
        addresses: tuple[Address, ...] = (ipaddress.ip_address(host),)
        resolved = False
    except ValueError:
        addresses = _resolve(host, port)
        resolved = True
    if not events_settings().webhook_allow_private:
        for address in addresses:
            if not is_public(address):
                subject = f"{host} resolves to {address}, which" if resolved else str(address)
                raise UnsafeURL(f"{subject} is a private or reserved address; that is not allowed.")
    return Target(url=parsed, addresses=addresses)
