"""Which replies say "slow down" (SPEC §8 `rate_limited`), for shaping."""

from __future__ import annotations

import re

from app.messages.relay_results import Reply

# Until app/bounces/rules.py::classify is merged in: the same rule as SPEC §8's row.
_SLOW_DOWN = re.compile(r"rate|throttl|too many|slow down", re.IGNORECASE)


def is_rate_limited(reply: Reply) -> bool:
    """A 421, 454 or 4.7.x reply whose text asks Pochta to slow down."""
    temporary = reply.code in (421, 454) or (reply.enhanced or "").startswith("4.7.")
    return temporary and _SLOW_DOWN.search(reply.text) is not None
