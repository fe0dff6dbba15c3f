"""Which replies say "slow down" (SPEC §8 `rate_limited`), for shaping (SPEC §10)."""

from __future__ import annotations

from app.bounces.classes import BounceClass
from app.bounces.rules import classify
from app.messages.relay_results import Reply
from app.messages.states import Stage


def is_rate_limited(reply: Reply, stage: Stage | None = None) -> bool:
    """Whether the bounce rules (the operator's first) class the reply `rate_limited`."""
    return classify(reply.code, reply.enhanced, reply.text, stage=stage) is BounceClass.rate_limited
