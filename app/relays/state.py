"""What every worker shares about a relay: paused, down, its shaped rate, its sessions.

Two stores keep it: Redis in production (app/relays/redis_store.py), the database in the
embedded mode (app/relays/db_store.py); `store_for` picks by the broker, as the
deployment does. Times are wall-clock UTC: hosts of one deployment share a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.config import Settings
from app.relays import shaping
from app.relays.config import Relay


class RelayCondition(StrEnum):
    up = "up"
    paused = "paused"
    down = "down"


@dataclass(frozen=True, slots=True)
class RelayState:
    """One relay's shared state as read at one moment."""

    base_rate: float | None = None
    limited_at: datetime | None = None
    paused_until: datetime | None = None
    down_until: datetime | None = None
    reason: str | None = None

    def condition(self, now: datetime) -> RelayCondition:
        if self.down_until is not None and self.down_until > now:
            return RelayCondition.down
        if self.paused_until is not None and self.paused_until > now:
            return RelayCondition.paused
        return RelayCondition.up

    def until(self, now: datetime) -> datetime | None:
        """When the relay's pause or down mark ends, if it has one now."""
        match self.condition(now):
            case RelayCondition.down:
                return self.down_until
            case RelayCondition.paused:
                return self.paused_until
        return None

    def rate(self, relay: Relay, now: datetime) -> float | None:
        """Messages per second the relay may take now (None: no limit)."""
        configured = relay.rate.per_second if relay.rate else None
        return shaping.current_rate(configured, self.base_rate, self.limited_at, now)


UP = RelayState()


class RelayStore(Protocol):
    """The shared store: every operation is atomic across processes and hosts."""

    def read(self, names: list[str]) -> dict[str, RelayState]:
        """Each named relay's state (UP for one never touched)."""
        ...

    def mark_down(self, name: str, *, until: datetime, reason: str) -> bool:
        """Skip the relay until then; False if it was already down (no change to log)."""
        ...

    def rate_limited(
        self, relay: Relay, *, now: datetime, until: datetime, reason: str
    ) -> RelayState | None:
        """Halve the relay's rate and pause it; None if it was already paused."""
        ...

    def take_session(self, name: str, token: str, *, limit: int | None, until: datetime) -> bool:
        """Count one more open session until `until`; False if `limit` are open already."""
        ...

    def drop_session(self, name: str, token: str) -> None: ...

    def sessions(self, names: list[str], now: datetime) -> dict[str, int]:
        """Open (unexpired) sessions per relay."""
        ...

    def take_send_slot(self, name: str, per_second: float) -> float:
        """Take one message's slot at `per_second` (GCRA: spaced 1/rate apart): 0.0, or
        the seconds to wait before asking again."""
        ...


def store_for(settings: Settings) -> RelayStore:
    """Redis when the broker is Redis (production), else the database (embedded)."""
    if settings.broker_url.startswith(("redis://", "rediss://", "redis+socket://")):
        from app.relays.redis_store import RedisRelayStore

        return RedisRelayStore(settings.broker_url)
    from app.relays.db_store import DatabaseRelayStore

    return DatabaseRelayStore()
