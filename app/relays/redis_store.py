"""The relays' shared state in Redis (production): a hash per relay, a sorted set of its
sessions, and a GCRA cursor for its rate, each changed by one atomic script or command.

Why not the `limits` library: its strategies (fixed window, moving window, sliding
window counter) all let a whole window's worth go at once. A relay counts on its own
clock, and the time from Pochta's slot to the relay's MAIL jitters, so a burst at the
end of one window and one at the start of the next reach the relay within a second:
with a moving window of 20/s our relay test saw 22 in one second. GCRA spaces the
messages 1/rate apart instead; it is the same few lines here (on Redis's clock) and in
the database store, so both modes behave alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from app.relays import shaping
from app.relays.config import Relay
from app.relays.state import UP, RelayState

_PREFIX = "pochta:relay:"
_FIELDS = ("base_rate", "limited_at", "paused_until", "down_until", "reason")

# Drop expired sessions, then add this one unless `limit` are open; 1 if it is counted.
_TAKE_SESSION = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local limit = tonumber(ARGV[4])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) == false and limit > 0
   and redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[1], 86400)
return 1
"""

# GCRA on Redis's clock: the key holds the earliest time the next message may go; a
# message takes the slot if that time has come, moving it on by 1/rate. Else: the wait.
_TAKE_SEND_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local interval = tonumber(ARGV[1])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot > now then
  return tostring(slot - now)
end
redis.call('SET', KEYS[1], tostring(now + interval), 'PX', math.ceil(interval * 1000) + 60000)
return '0'
"""


def _time(value: bytes | None) -> datetime | None:
    return None if not value else datetime.fromtimestamp(float(value), UTC)


def _float(value: bytes | None) -> float | None:
    return None if not value else float(value)


def _state(values: Sequence[Any]) -> RelayState:
    base, limited, paused, down, reason = values
    return RelayState(
        _float(base),
        _time(limited),
        _time(paused),
        _time(down),
        reason.decode("utf-8", "replace") if reason else None,
    )


class RedisRelayStore:
    """RelayStore on the deployment's Redis (the broker's server and database)."""

    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url)
        self._take_session = self._redis.register_script(_TAKE_SESSION)
        self._take_send_slot = self._redis.register_script(_TAKE_SEND_SLOT)

    def read(self, names: list[str]) -> dict[str, RelayState]:
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hmget(_PREFIX + name, _FIELDS)
        return {
            name: _state(values) if any(values) else UP
            for name, values in zip(names, pipe.execute(), strict=True)
        }

    def mark_down(self, name: str, *, until: datetime, reason: str) -> bool:
        key = _PREFIX + name
        previous = self._redis.hget(key, "down_until")
        self._redis.hset(key, mapping={"down_until": until.timestamp(), "reason": reason})
        return previous is None or float(previous) <= time.time()

    def rate_limited(
        self, relay: Relay, *, now: datetime, until: datetime, reason: str
    ) -> RelayState | None:
        key = _PREFIX + relay.name
        with self._redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    state = _state(pipe.hmget(key, _FIELDS))
                    if state.paused_until is not None and state.paused_until > now:
                        pipe.unwatch()
                        return None
                    rate = state.rate(relay, now)
                    update: dict[Any, Any] = {
                        "paused_until": until.timestamp(),
                        "reason": reason,
                    }
                    if rate is not None:
                        update |= {"base_rate": shaping.halved(rate), "limited_at": now.timestamp()}
                    pipe.multi()
                    pipe.hset(key, mapping=update)
                    pipe.execute()
                    return _state(self._redis.hmget(key, _FIELDS))
                except redis.WatchError:
                    continue

    def take_session(self, name: str, token: str, *, limit: int | None, until: datetime) -> bool:
        taken = self._take_session(
            keys=[f"{_PREFIX}{name}:sessions"],
            args=[time.time(), token, until.timestamp(), limit or 0],
        )
        return bool(taken)

    def drop_session(self, name: str, token: str) -> None:
        self._redis.zrem(f"{_PREFIX}{name}:sessions", token)

    def sessions(self, names: list[str], now: datetime) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.zcount(f"{_PREFIX}{name}:sessions", f"({now.timestamp()}", "+inf")
        return {name: int(n) for name, n in zip(names, pipe.execute(), strict=True)}

    def take_send_slot(self, name: str, per_second: float) -> float:
        wait = self._take_send_slot(keys=[f"{_PREFIX}{name}:slot"], args=[1 / per_second])
        return float(wait)
