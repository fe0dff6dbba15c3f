"""One webhook request over HTTP: the transport it goes through, the POST (its answer read
no further than needed), and what it got.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from app.config import Settings
from app.webhooks.addresses import NOT_ALLOWED
from app.webhooks.transport import AddressNotAllowed, PinnedTransport

# What a receiver answers is not read past this: only its status matters.
BODY_CAP = 64 * 1024
_HEADERS = {"content-type": "application/json", "user-agent": "Pochta-Webhooks/1"}


@dataclass(frozen=True)
class Answer:
    """What one request got: a status, or an error where nothing usable came back."""

    status: int | None
    error: str | None
    duration_ms: int
    retry_after: str | None = None


def new_transport(settings: Settings) -> httpx.BaseTransport:
    """What webhook requests go through: pinned addresses, connections kept alive.

    Requests go to the transport itself, not through an httpx.Client: a sender needs
    none of a client's redirects, auth, cookies or URL merging, and they cost more CPU
    than the request.
    """
    return PinnedTransport(allow_private=settings.webhook_allow_private)


def post(
    transport: httpx.BaseTransport, url: str, body: bytes, headers: dict[str, str], timeout: float
) -> Answer:
    """POST body; read at most BODY_CAP of the answer, and nothing past the timeout."""
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={**headers, **_HEADERS},
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )
    try:
        response = transport.handle_request(request)
        try:
            read = 0
            for chunk in response.iter_raw():
                read += len(chunk)
                if read >= BODY_CAP or time.monotonic() - started > timeout:
                    break
        finally:
            response.close()
        return Answer(response.status_code, None, elapsed_ms(), response.headers.get("retry-after"))
    except AddressNotAllowed:
        return Answer(None, NOT_ALLOWED, elapsed_ms())
    except httpx.TimeoutException:
        return Answer(None, f"timed out after {timeout:g} s", elapsed_ms())
    except httpx.HTTPError as error:
        return Answer(None, _describe(error), elapsed_ms())


def _describe(error: httpx.HTTPError) -> str:
    text = str(error) or error.__class__.__name__
    if isinstance(error, httpx.ConnectError):
        return f"connection failed: {text}"
    return text
