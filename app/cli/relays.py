"""`pochta relays`: each relay's name, host:port, state, current rate and open sessions."""

from __future__ import annotations

import argparse

from app.cli.database import database_errors
from app.config import Settings


def _rate(per_second: float | None) -> str:
    if per_second is None:
        return "unlimited"
    if per_second >= 1:
        return f"{per_second:.4g}/s"
    return f"{per_second * 60:.4g}/min"


def cmd_relays(_: argparse.Namespace, settings: Settings) -> None:
    from app.clock import utcnow
    from app.relays.config import get_relays
    from app.relays.state import RelayCondition, store_for

    relays = get_relays(settings)
    store = store_for(settings)
    names = list(relays.by_name)
    with database_errors(settings):
        states = store.read(names)
        sessions = store.sessions(names, utcnow())
    now = utcnow()
    rows = [("NAME", "HOST:PORT", "STATE", "RATE", "SESSIONS")]
    for name, relay in relays.by_name.items():
        state = states[name]
        condition = state.condition(now)
        until = state.until(now)
        shown = condition.value
        if condition is not RelayCondition.up and until is not None:
            shown = f"{condition.value} until {until.isoformat(timespec='seconds')}"
        limit = f" (max {relay.max_connections})" if relay.max_connections else ""
        rows.append(
            (name, relay.address, shown, _rate(state.rate(relay, now)), f"{sessions[name]}{limit}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for name in names:
        state = states[name]
        if state.condition(now) is not RelayCondition.up and state.reason:
            print(f"{name}: {state.reason}")
