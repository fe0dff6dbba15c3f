"""The backoff: when to try a deferred message again, and when to give up (SPEC §3,
RFC 5321 §4.5.4.1)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from app.config import Settings
from app.messages.models import Message
from app.messages.settlement import AttemptsSpent, LifetimeSpent, RetryDecision


def backoff_seconds(settings: Settings, attempt_number: int, rng: random.Random) -> float:
    """Exponential from the base, capped at the max, with ±10 % jitter inside those bounds."""
    exponent = min(attempt_number - 1, 64)
    delay = min(settings.retry_max_seconds, settings.retry_base_seconds * 2.0**exponent)
    # Jitter spreads a burst of deferrals (a relay that greylisted everyone) over time.
    jittered = delay * rng.uniform(0.9, 1.1)
    return max(settings.retry_base_seconds, min(settings.retry_max_seconds, jittered))


class ExponentialBackoff:
    """Pochta's RetryPolicy: after an attempt that left recipients deferred, the next try's
    time, or None once the attempts or the age run out."""

    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self._settings = settings
        self._rng = rng or random.Random()

    def __call__(self, message: Message, now: datetime) -> RetryDecision:
        attempts = message.attempt_count + 1
        settings = self._settings
        if settings.retry_max_attempts is not None and attempts >= settings.retry_max_attempts:
            return RetryDecision(None, AttemptsSpent(attempts))
        # Age counts from when the message became due, as Postfix's maximal_queue_lifetime.
        born = message.send_at or message.created_at
        lifetime = timedelta(seconds=settings.retry_max_age_seconds)
        if now - born >= lifetime:
            return RetryDecision(None, LifetimeSpent(lifetime))
        delay = backoff_seconds(settings, attempts, self._rng)
        return RetryDecision(now + timedelta(seconds=delay))
