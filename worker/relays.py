"""This process's relays: a connection pool each, the shared limits, failover and shaping.

The route's relays are tried in order, skipping one down (while another is not) or paused.
One with limits gives session and send slots from the shared store first; one without
costs no round trip per message (the state is read at most once a second). A message no
relay could take is Postponed: handed back without an attempt (docs/relays.md)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.clock import utcnow
from app.config import Settings
from app.messages.models import Message
from app.messages.relay_results import AttemptResult, Reply
from app.messages.states import Stage
from app.relays import shaping
from app.relays.config import Relay, get_relays
from app.relays.replies import is_rate_limited
from app.relays.state import UP, RelayCondition, RelayState, RelayStore, store_for
from worker.delivery import deliver
from worker.metrics import ObservedRelayPool, show_relays

log = logging.getLogger("pochta.relays")

Clock = Callable[[], datetime]

# A session or send slot not had within this leaves the message for later.
SLOT_WAIT_SECONDS = 2.0
# The shared state is read again after this; a relay without limits costs nothing more.
STATE_TTL_SECONDS = 1.0
# A session slot counts until then unless renewed: a killed worker's slots run out.
SESSION_LEASE_SECONDS = 120.0
# The shared store away (Redis or the database restarting): a relay without limits goes
# on with what was last read; one with limits gives no slot, so nothing goes over.
STORE_ERRORS = (redis.RedisError, SQLAlchemyError, OSError)
# Stages at which no session was had: the attempt moves on to the route's next relay.
NO_SESSION = frozenset({Stage.connect, Stage.ehlo, Stage.starttls, Stage.auth})


@dataclass(frozen=True, slots=True)
class Postponed:
    """No relay of the route could take the message now: try again at `until`, uncharged."""

    until: datetime


class RelayRouter:
    """Every relay this process sends through, with its pool and its shared state."""

    def __init__(self, settings: Settings, store: RelayStore | None = None) -> None:
        self.settings = settings
        self.relays = get_relays(settings)
        self.store = store if store is not None else store_for(settings)
        self.pools = {
            name: ObservedRelayPool(relay.settings) for name, relay in self.relays.by_name.items()
        }
        self._token = uuid.uuid4().hex
        self._sessions: dict[str, datetime] = {}  # relay -> our session slot's expiry
        self._states: dict[str, RelayState] = {}
        self._read_at = float("-inf")
        self._busy_until: dict[str, float] = {}  # relay -> monotonic time a slot may be had

    # the shared state, cached

    def states(self) -> dict[str, RelayState]:
        """Each relay's shared state, read at most once per STATE_TTL_SECONDS."""
        if time.monotonic() - self._read_at > STATE_TTL_SECONDS:
            names = list(self.relays.by_name)
            self._read_at = time.monotonic()
            try:
                fresh = self.store.read(names)
                sessions = self.store.sessions(names, utcnow())
            except STORE_ERRORS as error:
                log.warning("relay state unavailable, using what was last read: %s", error)
                return self._states
            now = utcnow()
            for name, state in fresh.items():
                before = self._states.get(name, UP).condition(now)
                if before is not RelayCondition.up and state.condition(now) is RelayCondition.up:
                    log.info(
                        "relay %s is up again (was %s)",
                        name,
                        before.value,
                        extra={"relay": name, "state": "up", "was": before.value},
                    )
            self._states = fresh
            show_relays(self.relays.by_name, fresh, sessions, now)
        return self._states

    def _remember(self, relay: Relay, state: RelayState) -> None:
        self._states = {**self._states, relay.name: state}

    def deliver(self, message: Message, clock: Clock) -> AttemptResult | Postponed:
        """One attempt over the route's first relay that gives a session, or Postponed."""
        route = self.relays.route_for(
            tenant=message.tenant, from_header=message.from_header, tags=message.tags
        )
        states = self.states()
        now = utcnow()
        # With every relay of the route down, try them anyway: a down mark is a hint.
        usable = [
            r for r in route if states.get(r.name, UP).condition(now) is not RelayCondition.down
        ]
        waits: list[datetime] = []
        started = clock()
        result: AttemptResult | None = None
        for relay in usable or route:
            state = states.get(relay.name, UP)
            if state.condition(now) is RelayCondition.paused:
                assert state.paused_until is not None
                waits.append(state.paused_until)
                continue
            wait = self._take_slots(relay, state)
            if wait is not None:
                waits.append(wait)
                continue
            pool = self.pools[relay.name]
            result = deliver(pool, message, clock, relay=relay.label)
            result.started_at = started
            self._after_session(relay)
            if result.stage in NO_SESSION:
                self._no_session(relay, result, message)
                continue
            self._shape(relay, result, message)
            return result
        if waits:
            return Postponed(min(waits))
        assert result is not None
        return result

    def _take_slots(self, relay: Relay, state: RelayState) -> datetime | None:
        """Session and send slots of a relay with limits; when to try again if not had."""
        if not relay.limited:
            return None
        try:
            return self._wait_for_slots(relay, state)
        except STORE_ERRORS as error:
            log.warning("no slot for relay %s: the store is away (%s)", relay.name, error)
            return self._busy(relay, 1.0)

    def _wait_for_slots(self, relay: Relay, state: RelayState) -> datetime | None:
        now = time.monotonic()
        busy = self._busy_until.get(relay.name, now)
        if busy > now:
            # Just waited in vain: the task's other messages do not wait again.
            return utcnow() + timedelta(seconds=busy - now)
        deadline = now + SLOT_WAIT_SECONDS
        if relay.max_connections is not None and not self._session_held(relay):
            while not self._take_session(relay):
                if time.monotonic() + 0.05 > deadline:
                    return self._busy(relay, 1.0)
                time.sleep(0.05)
        if relay.rate is not None:
            while True:
                per_second = state.rate(relay, utcnow())
                assert per_second is not None
                wait = self.store.take_send_slot(relay.name, shaping.slot_rate(per_second))
                if wait == 0.0:
                    break
                if time.monotonic() + wait > deadline:
                    return self._busy(relay, wait)
                time.sleep(wait)
        return None

    def _busy(self, relay: Relay, seconds: float) -> datetime:
        self._busy_until[relay.name] = time.monotonic() + seconds
        return utcnow() + timedelta(seconds=seconds)

    def _session_held(self, relay: Relay) -> bool:
        until = self._sessions.get(relay.name)
        if until is None:
            return False
        if until - utcnow() < timedelta(seconds=SESSION_LEASE_SECONDS / 2):
            return self._take_session(relay)  # renewed, or lost to the limit
        return True

    def _take_session(self, relay: Relay) -> bool:
        until = utcnow() + timedelta(seconds=SESSION_LEASE_SECONDS)
        taken = self.store.take_session(
            relay.name, self._token, limit=relay.max_connections, until=until
        )
        if taken:
            self._sessions[relay.name] = until
        else:
            self._sessions.pop(relay.name, None)
        return taken

    def _after_session(self, relay: Relay) -> None:
        """Count the session this process has open (one round trip when it opens or ends)."""
        pool = self.pools[relay.name]
        pool.observe()
        try:
            if not pool.is_open:
                self._drop_session(relay)
            elif relay.max_connections is None:
                # Counted for `pochta relays`; renewed while it lasts, so it never runs out.
                self._session_held(relay) or self._take_session(relay)
        except STORE_ERRORS as error:
            # Only the count is late: the entry runs out by itself, or is taken next time.
            log.info("relay %s: session not counted (%s)", relay.name, error)

    def _drop_session(self, relay: Relay) -> None:
        if self._sessions.pop(relay.name, None) is not None:
            self.store.drop_session(relay.name, self._token)

    # what the relay said

    def _no_session(self, relay: Relay, result: AttemptResult, message: Message) -> None:
        reply = result.reply
        if reply is not None and is_rate_limited(reply, result.stage):
            self._pause(relay, reply, message)
            return
        until = utcnow() + timedelta(seconds=self.settings.relay_down_seconds)
        reason = str(reply) if reply else (result.error or "no session")
        try:
            changed = self.store.mark_down(relay.name, until=until, reason=reason)
        except STORE_ERRORS as error:
            log.warning("relay %s: down mark not shared (%s)", relay.name, error)
            changed = True
        if changed:
            log.warning(
                "relay %s is down until %s: %s",
                relay.name,
                until.isoformat(),
                reason,
                extra={
                    "relay": relay.name,
                    "state": "down",
                    "reason": reason,
                    "message_id": message.id,
                },
            )
        self._remember(relay, RelayState(down_until=until, reason=reason))

    def _shape(self, relay: Relay, result: AttemptResult, message: Message) -> None:
        replies = [result.reply] + [r.reply for r in result.recipients.values()]
        # Only refusals are classed: a 250 costs no rule matching.
        slow_down = next((r for r in replies if r and r.code >= 400 and is_rate_limited(r)), None)
        if slow_down is not None:
            result.retry_at = self._pause(relay, slow_down, message)

    def _pause(self, relay: Relay, reply: Reply, message: Message) -> datetime:
        now = utcnow()
        until = now + timedelta(seconds=self.settings.relay_backoff_seconds)
        try:
            state = self.store.rate_limited(relay, now=now, until=until, reason=str(reply))
        except STORE_ERRORS as error:
            log.warning("relay %s: pause not shared (%s)", relay.name, error)
            state = RelayState(paused_until=until, reason=str(reply))
        if state is None:
            # Another worker paused it already: read its pause before the next message.
            self._read_at = float("-inf")
            current = self._states.get(relay.name, UP).paused_until
            return current if current is not None and current > now else until
        rate = state.rate(relay, now)
        log.warning(
            "relay %s paused until %s, rate now %s: %s",
            relay.name,
            until.isoformat(),
            "unlimited" if rate is None else f"{rate:.3g}/s",
            reply,
            extra={
                "relay": relay.name,
                "state": "paused",
                "reason": str(reply),
                "rate_per_second": rate,
                "message_id": message.id,
            },
        )
        self._remember(relay, state)
        return until

    # the end of a task, of the process

    def task_done(self) -> None:
        """Close sessions of relays with max_connections: an idle one would hold a slot."""
        for name, relay in self.relays.by_name.items():
            if relay.max_connections is not None and name in self._sessions:
                self.pools[name].close()
                try:
                    self._drop_session(relay)
                except STORE_ERRORS:
                    log.info("could not release a session slot of %s; it runs out", name)

    def close(self) -> None:
        for name, pool in self.pools.items():
            pool.close()
            try:
                self._drop_session(self.relays.by_name[name])
            except STORE_ERRORS:
                log.info("could not release a session slot of %s; it runs out", name)
