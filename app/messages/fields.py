"""The submit body's field rules: what one value may hold, and how many a field may have."""

from __future__ import annotations

import re
from collections.abc import Callable, Sized
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

from app.config import Settings, get_settings
from app.messages.addresses import no_bidi_override, parse_mailbox

# RFC 5322 §3.6.8: printable US-ASCII except colon.
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
# Fields Pochta writes itself, and the trace and authentication fields only an MTA writes
# (RFC 5321 §4.4, RFC 6376, RFC 8617, RFC 8601, RFC 7208): a client's copy would lie.
_RESERVED_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "reply-to",
        "return-path",
        "received",
        "dkim-signature",
        "authentication-results",
        "received-spf",
    }
)
# A name cannot be folded: with its colon and a space it must fit a line of 998 octets.
_MAX_FIELD_NAME = 996
_RESERVED_PREFIXES = ("content-", "resent-", "arc-")

# Other controls, and what str.splitlines() also takes for a line end (VT, FF, FS-RS, NEL,
# U+2028, U+2029): none belongs in a header line. Tab is folding whitespace and allowed.
_NOT_IN_A_LINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")

# The email package encodes a non-ASCII header value in time that grows with the square
# of its length (100 values of 998 characters: about a second), so values are capped
# one by one at a header line's length and all together at what a real message uses.
MAX_HEADER_VALUE_CHARS = 998
MAX_HEADER_VALUES_CHARS = 16_384


def encodable(value: str) -> str:
    """No NUL (RFC 5322 has none; PostgreSQL text cannot hold one), no lone surrogate."""
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it has a lone surrogate)") from None
    return value


def no_line_breaks(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError("must not contain CR or LF")
    if _NOT_IN_A_LINE.search(value):
        raise ValueError("must not contain control characters or line separators")
    return encodable(value)


def _mailbox(value: str) -> str:
    return str(parse_mailbox(no_line_breaks(value)))


def custom_header_name(name: str) -> None:
    """ValueError unless a client may set a header of this name."""
    if len(name) > _MAX_FIELD_NAME:
        raise ValueError(
            f"{name[:40]!r}… is {len(name)} characters: a header name must fit one line with "
            f"its colon (at most {_MAX_FIELD_NAME} characters)"
        )
    if not _FIELD_NAME.match(name):
        raise ValueError(f"{name!r} is not an RFC 5322 header field name")
    lowered = name.lower()
    if lowered in _RESERVED_HEADERS or lowered.startswith(_RESERVED_PREFIXES):
        raise ValueError(f"{name!r} is written by Pochta or by MTAs and cannot be given")


def at_most(setting: Callable[[Settings], int], variable: str) -> BeforeValidator:
    """A cap from the settings, checked on the raw value before any item is validated.

    Validating each of 150,000 items (and reporting each one's errors) took seconds of
    the event loop; counting them first costs nothing.
    """

    def check(value: object) -> object:
        cap = setting(get_settings())
        if isinstance(value, Sized) and not isinstance(value, str) and len(value) > cap:
            raise ValueError(f"has {len(value)} items; at most {cap} ({variable})")
        return value

    return BeforeValidator(check)


def check_metadata(value: object) -> object:
    """At most so many keys, each key and string value at most so long (before parsing)."""
    settings = get_settings()
    if not isinstance(value, dict):
        return value
    if len(value) > settings.max_metadata_keys:
        raise ValueError(
            f"has {len(value)} keys; at most {settings.max_metadata_keys} "
            "(POCHTA_MAX_METADATA_KEYS)"
        )
    for key, item in value.items():
        if isinstance(key, str) and len(key) > settings.max_metadata_key_chars:
            raise ValueError(
                f"key {key[:40]!r}… is {len(key)} characters; at most "
                f"{settings.max_metadata_key_chars} (POCHTA_MAX_METADATA_KEY_CHARS)"
            )
        if isinstance(item, str) and len(item) > settings.max_metadata_value_chars:
            raise ValueError(
                f"value of {key[:40]!r} is {len(item)} characters; at most "
                f"{settings.max_metadata_value_chars} (POCHTA_MAX_METADATA_VALUE_CHARS)"
            )
    return value


# RFC 3339 date-time (the OpenAPI `date-time` format); pydantic alone would also take
# numbers and numeric strings as Unix times, and dates without a time.
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?P<zone>[Zz]|[+-]\d\d:\d\d)?", re.ASCII
)


def _rfc3339(value: object) -> object:
    match = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-12-01T09:00:00Z")
    if match["zone"] is None:
        raise ValueError("must carry a time zone, e.g. 2026-12-01T09:00:00Z")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("must carry a time zone, e.g. 2026-12-01T09:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


def format_utc(value: datetime) -> str:
    """A UTC instant as the API writes it: `2026-12-01T09:00:00.000Z`."""
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# RFC 6838 type/subtype names (ASCII; pydantic's \w alone would take any letter).
MEDIA_TYPE = r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$"

MailboxStr = Annotated[str, AfterValidator(_mailbox)]
SingleLine = Annotated[str, AfterValidator(no_line_breaks)]
FileName = Annotated[str, AfterValidator(no_line_breaks), AfterValidator(no_bidi_override)]
Text = Annotated[str, AfterValidator(encodable)]
AwareDatetime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]
UtcTimestamp = Annotated[datetime, PlainSerializer(format_utc, return_type=str)]
