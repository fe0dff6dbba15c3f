"""AIMD shaping of a relay's rate (SPEC §10), as pure arithmetic on its shared state.

A `rate_limited` reply halves the rate the relay had at that moment (never below one a
minute); every whole minute since then adds 10 % back, up to the configured rate. The
rate is computed from (base, limited_at) when read, so no process has to tick it up.
"""

from __future__ import annotations

import math
from datetime import datetime

FLOOR_PER_SECOND = 1 / 60
# Send slots are spaced for this share of the rate: the relay counts on its own clock,
# and the time from our slot to its MAIL jitters (a new connection, a busy core), so slots
# spaced exactly 1/rate apart still let some second at the relay see rate + 2.
HEADROOM = 0.9
CLEAN_PERIOD_SECONDS = 60.0
INCREASE = 1.10


def current_rate(
    configured: float | None, base: float | None, limited_at: datetime | None, now: datetime
) -> float | None:
    """Messages per second the relay may take now; None: no limit."""
    if configured is None or base is None or limited_at is None:
        return configured
    clean_periods = max(0, math.floor((now - limited_at).total_seconds() / CLEAN_PERIOD_SECONDS))
    # 1.1**k overflows long before k gets large; past the configured rate it is moot.
    if clean_periods > 200:
        return configured
    return min(configured, base * INCREASE**clean_periods)


def slot_rate(rate: float) -> float:
    """The rate send slots are given at, for a relay allowed `rate` messages a second."""
    return rate * HEADROOM


def halved(rate: float) -> float:
    """The rate after a `rate_limited` reply."""
    return max(rate / 2, FLOOR_PER_SECOND)
