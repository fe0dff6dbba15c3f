"""Each relay's state as an operator reads it: `pochta relays` and the dashboard share it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.config import Settings
from app.relays.config import get_relays
from app.relays.state import RelayCondition, store_for


@dataclass(frozen=True, slots=True)
class RelayReport:
    """One relay at one moment: where it is, whether it is used, how fast, how busy."""

    name: str
    address: str
    condition: RelayCondition
    until: datetime | None
    reason: str | None
    rate_per_second: float | None
    sessions: int
    max_connections: int | None


def rate_text(per_second: float | None) -> str:
    if per_second is None:
        return "unlimited"
    if per_second >= 1:
        return f"{per_second:.4g}/s"
    return f"{per_second * 60:.4g}/min"


def relay_reports(settings: Settings, now: datetime) -> list[RelayReport]:
    """Every configured relay's shared state (from Redis or the database), in file order."""
    relays = get_relays(settings)
    store = store_for(settings)
    names = list(relays.by_name)
    states = store.read(names)
    sessions = store.sessions(names, now)
    reports = []
    for name, relay in relays.by_name.items():
        state = states[name]
        condition = state.condition(now)
        reports.append(
            RelayReport(
                name=name,
                address=relay.address,
                condition=condition,
                until=state.until(now),
                reason=state.reason if condition is not RelayCondition.up else None,
                rate_per_second=state.rate(relay, now),
                sessions=sessions[name],
                max_connections=relay.max_connections,
            )
        )
    return reports
