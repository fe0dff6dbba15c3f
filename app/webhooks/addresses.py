"""Which webhook targets are inside the operator's network, and so refused (SPEC §7).

The same rule serves create/patch (check_url, by the host's resolved addresses) and the
sender at connect time (is_forbidden, on the address actually connected to).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Carrier-grade NAT space (RFC 6598); Python's is_private leaves it out.
_SHARED = ipaddress.ip_network("100.64.0.0/10")

NOT_ALLOWED = "address not allowed"


def is_forbidden(ip: str | IPAddress) -> bool:
    """True for loopback, private, link-local, shared, multicast, unspecified and reserved
    addresses, IPv4 or IPv6; an IPv6 address that carries an IPv4 one (IPv4-mapped,
    6to4) is judged as that IPv4 address."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4-mapped address reaches that IPv4 host; a 6to4 one (2002::/16) is routed
        # to the IPv4 address it embeds.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_forbidden(embedded)
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )


def check_url(url: str, allow_private: bool) -> str | None:
    """Why `url` cannot be a webhook target, or None when it can."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "must be a valid http(s) URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    host = parts.hostname
    if not host:
        return "must name a host"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"host {host} does not resolve"
    for info in infos:
        # The scope id of an IPv6 link-local address ("fe80::1%eth0") is not part of it.
        address = str(info[4][0]).split("%", 1)[0]
        if is_forbidden(address):
            return f"{NOT_ALLOWED}: {host} is or resolves to {address}"
    return None
