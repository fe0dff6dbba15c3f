"""When a failed webhook request is tried again (SPEC §7): the schedule, jitter, Retry-After."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime

# A Retry-After is honoured up to this; a receiver asking for a day is asking too much.
MAX_RETRY_AFTER_SECONDS = 3600.0
JITTER = 0.1
# Only these answers carry a Retry-After worth reading (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = frozenset({429, 503})


def is_success(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP-date), capped; else None."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def next_delay(
    *,
    attempt: int,
    schedule: Sequence[float],
    status: int | None,
    retry_after: float | None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds until the next request after failed request number `attempt` (1-based), or
    None when the schedule is spent: the first request and one per delay, no more."""
    if attempt > len(schedule):
        return None
    if retry_after is not None and status in RETRY_AFTER_STATUSES:
        return retry_after
    spread = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return schedule[attempt - 1] * spread
