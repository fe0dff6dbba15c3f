"""The words of a give-up note: the limit that ended the retries, in the units it falls into."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.messages.settlement import (
    AttemptsSpent,
    LifetimeSpent,
    RetryDecision,
    give_up_note,
    spoken_duration,
)


@pytest.mark.parametrize(
    ("duration", "spoken"),
    [
        (timedelta(days=5), "5 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(days=1, hours=12), "1 day 12 hours"),
        (timedelta(hours=1), "1 hour"),
        (timedelta(hours=36), "1 day 12 hours"),
        (timedelta(minutes=90), "1 hour 30 minutes"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
        (timedelta(days=2, seconds=1), "2 days 1 second"),
        (timedelta(seconds=1), "1 second"),
        (timedelta(seconds=45), "45 seconds"),
        (timedelta(seconds=0.3), "0.3 seconds"),
        (timedelta(seconds=1.5), "1.5 seconds"),
        (timedelta(seconds=60.25), "1 minute 0.25 seconds"),
        (timedelta(0), "0 seconds"),
    ],
)
def test_a_duration_is_said_in_the_units_it_falls_into(duration: timedelta, spoken: str) -> None:
    assert spoken_duration(duration) == spoken


def test_the_note_names_the_limit_that_was_reached() -> None:
    assert give_up_note(RetryDecision(None, AttemptsSpent(3))) == "gave up after 3 attempts"
    assert give_up_note(RetryDecision(None, AttemptsSpent(1))) == "gave up after 1 attempt"
    lifetime = LifetimeSpent(timedelta(seconds=432000))
    assert give_up_note(RetryDecision(None, lifetime)) == "retry lifetime of 5 days exceeded"
