"""The relays' shared state in Redis (production): a hash per relay, a sorted set of its
sessions, and the `limits` library's moving window for its rate.

`limits` keeps a moving window per limit in a Redis list with an atomic Lua script: no
1-second (or 1-minute) window ever holds more than the rate, across every host. A
shaped rate is a new limit item (its key names the amount), which is what we want: the
old window's entries belong to the old rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from limits import (
    RateLimitItem,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerSecond,
)
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from app.relays import shaping
from app.relays.config import Rate, Relay
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

_ITEMS = {1: RateLimitItemPerSecond, 60: RateLimitItemPerMinute, 3600: RateLimitItemPerHour}


def limit_item(rate: Rate, per_second: float) -> RateLimitItem:
    """per_second as a whole number per the configured unit (per minute when it is less
    than one per second: the shaped floor is one a minute)."""
    unit = rate.per_seconds
    amount = math.floor(per_second * unit + 1e-9)
    if amount < 1 and unit < 60:
        unit, amount = 60, math.floor(per_second * 60 + 1e-9)
    if amount < 1:
        unit, amount = 3600, max(1, math.floor(per_second * 3600 + 1e-9))
    return _ITEMS[unit](amount)


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
        self._limiter = MovingWindowRateLimiter(RedisStorage(url, key_prefix="pochta:relay-rate"))

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

    def take_send_slot(self, name: str, rate: Rate, per_second: float) -> float:
        item = limit_item(rate, per_second)
        if self._limiter.hit(item, name):
            return 0.0
        stats = self._limiter.get_window_stats(item, name)
        return max(stats.reset_time - time.time(), 0.01)
