"""The email every phase sends (about 1 KB), as JSON and as ready HTTP/1.1 requests."""

from __future__ import annotations

from typing import Any

import orjson

SENDER = "Pochta Bench <bench@example.org>"
RECIPIENT = "Billy <billy@example.org>"
SUBJECT = "Pochta benchmark: one kilobyte of plain text"
# Fourteen short ASCII lines, so the body stays 7-bit without any transfer encoding.
_LINE = "The quick brown fox jumps over the lazy dog, and the mail goes out.\n"
TEXT = _LINE * 14


def message() -> dict[str, Any]:
    """One submit body (SPEC §2), the same for every request of a phase."""
    return {"from": SENDER, "to": [RECIPIENT], "subject": SUBJECT, "text": TEXT}


def message_json() -> bytes:
    return orjson.dumps(message())


def batch_json(count: int) -> bytes:
    """A `POST /v1/messages/batch` body of count identical items."""
    return orjson.dumps({"messages": [message()] * count})


def post(path: str, body: bytes, *, key: str, port: int) -> bytes:
    """A keep-alive HTTP/1.1 POST of a JSON body, as bytes on the wire."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


def get(path: str, *, port: int) -> bytes:
    """A keep-alive HTTP/1.1 GET, as bytes on the wire."""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode("ascii")
