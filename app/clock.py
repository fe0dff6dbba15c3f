"""The one clock: every timestamp Pochta stores or compares is aware UTC from here."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
