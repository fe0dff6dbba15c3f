"""Ids Pochta hands out: time-ordered, random, and printable ASCII with a type prefix."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def new_id(prefix: str, at: datetime | None = None) -> str:
    """A time-ordered random id (ULID layout, lower-case Crockford base32) with a prefix;
    ordered by `at` when given (what the id names happened then), else by now."""
    millis = time.time_ns() // 1_000_000 if at is None else _millis(at)
    return prefix + _encode(millis << 80 | int.from_bytes(os.urandom(10), "big"))


def id_floor(prefix: str, at: datetime) -> str:
    """The least id new_id makes for `at`: every id made for an earlier time sorts below."""
    return prefix + _encode(_millis(at) << 80)


def _millis(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
