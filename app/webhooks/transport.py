"""An httpx transport that resolves a webhook's host once and connects only to that address.

Checking the host at create time is not enough: its DNS may answer differently later (DNS
rebinding), so the address checked is the one connected to. The URL's host is swapped for
that address, while the Host header (set when the request was built) and, over TLS, the
SNI and certificate name stay the host's name.
"""

from __future__ import annotations

import socket

import httpx

from app.webhooks.addresses import NOT_ALLOWED, is_forbidden

_DEFAULT_PORTS = {"http": 80, "https": 443}


class AddressNotAllowed(httpx.ConnectError):
    """The host is or resolved to an address inside the operator's network."""


class PinnedTransport(httpx.BaseTransport):
    """Resolve, refuse a forbidden address (unless allowed), connect to what was resolved."""

    def __init__(self, *, allow_private: bool, inner: httpx.BaseTransport | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        port = request.url.port or _DEFAULT_PORTS.get(request.url.scheme, 80)
        address = self._resolve(host, port, request)
        if not self._allow_private and is_forbidden(address):
            raise AddressNotAllowed(NOT_ALLOWED, request=request)
        if address != host:
            request.url = request.url.copy_with(host=address)
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
        return self._inner.handle_request(request)

    @staticmethod
    def _resolve(host: str, port: int, request: httpx.Request) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise httpx.ConnectError(f"host {host} does not resolve", request=request) from error
        # The scope id of an IPv6 link-local address is not part of the address.
        return str(infos[0][4][0]).split("%", 1)[0]

    def close(self) -> None:
        self._inner.close()
