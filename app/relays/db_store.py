"""The relays' shared state in the database (embedded mode): one row per relay, locked.

SQLite takes its write lock at BEGIN, so two processes never interleave; on PostgreSQL
the relay's row is locked FOR UPDATE. The rate limit is GCRA: the row keeps the earliest
time the next message may go, and each message moves it on by 1/rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import db
from app.clock import utcnow
from app.relays import shaping
from app.relays.config import Relay
from app.relays.models import RelaySessionRow, RelayStateRow
from app.relays.state import UP, RelayState

T = TypeVar("T")


def _locked(session: Session, name: str) -> RelayStateRow:
    row = session.get(RelayStateRow, name, with_for_update=True)
    if row is None:
        row = RelayStateRow(relay=name)
        session.add(row)
        session.flush()
    return row


def _state(row: RelayStateRow) -> RelayState:
    return RelayState(row.base_rate, row.limited_at, row.paused_until, row.down_until, row.reason)


class DatabaseRelayStore:
    """RelayStore on this process's database engine."""

    def _run(self, operation: Callable[[Session], T]) -> T:
        # Two processes creating one relay's row at once: the loser runs again and finds it.
        for _ in range(3):
            try:
                with db.session_scope() as session:
                    return operation(session)
            except IntegrityError:
                continue
        with db.session_scope() as session:
            return operation(session)

    def read(self, names: list[str]) -> dict[str, RelayState]:
        with db.session_scope() as session:
            rows = session.scalars(select(RelayStateRow).where(RelayStateRow.relay.in_(names)))
            found = {row.relay: _state(row) for row in rows}
        return {name: found.get(name, UP) for name in names}

    def mark_down(self, name: str, *, until: datetime, reason: str) -> bool:
        def operation(session: Session) -> bool:
            row = _locked(session, name)
            was_down = row.down_until is not None and row.down_until > utcnow()
            row.down_until = until
            row.reason = reason
            return not was_down

        return self._run(operation)

    def rate_limited(
        self, relay: Relay, *, now: datetime, until: datetime, reason: str
    ) -> RelayState | None:
        def operation(session: Session) -> RelayState | None:
            row = _locked(session, relay.name)
            if row.paused_until is not None and row.paused_until > now:
                return None
            rate = _state(row).rate(relay, now)
            if rate is not None:
                row.base_rate = shaping.halved(rate)
                row.limited_at = now
            row.paused_until = until
            row.reason = reason
            return _state(row)

        return self._run(operation)

    def take_session(self, name: str, token: str, *, limit: int | None, until: datetime) -> bool:
        def operation(session: Session) -> bool:
            _locked(session, name)
            now = utcnow()
            session.execute(
                delete(RelaySessionRow).where(
                    RelaySessionRow.relay == name, RelaySessionRow.expires_at <= now
                )
            )
            existing = session.get(RelaySessionRow, token)
            if existing is not None:
                existing.expires_at = until
                return True
            if limit is not None:
                open_now = session.scalar(select(func.count()).where(RelaySessionRow.relay == name))
                if (open_now or 0) >= limit:
                    return False
            session.add(RelaySessionRow(token=token, relay=name, expires_at=until))
            return True

        return self._run(operation)

    def drop_session(self, name: str, token: str) -> None:
        with db.session_scope() as session:
            session.execute(delete(RelaySessionRow).where(RelaySessionRow.token == token))

    def sessions(self, names: list[str], now: datetime) -> dict[str, int]:
        with db.session_scope() as session:
            rows = session.execute(
                select(RelaySessionRow.relay, func.count())
                .where(RelaySessionRow.relay.in_(names), RelaySessionRow.expires_at > now)
                .group_by(RelaySessionRow.relay)
            )
            counts = {relay: int(count) for relay, count in rows}
        return {name: counts.get(name, 0) for name in names}

    def take_send_slot(self, name: str, per_second: float) -> float:
        def operation(session: Session) -> float:
            row = _locked(session, name)
            now = time.time()
            slot = max(row.next_slot or now, now)
            if slot > now:
                return slot - now
            row.next_slot = slot + 1 / per_second
            return 0.0

        return self._run(operation)
