"""The relays and routes Pochta sends through (SPEC §10): POCHTA_RELAYS_FILE, or POCHTA_SMTP_*.

A relay is kept as the Settings the SMTP session already reads (its POCHTA_SMTP_* fields
replaced by the relay's own), so one session code serves the one-relay shorthand and
every relay of the file alike.
"""

from __future__ import annotations

import email.utils
import os
import re
import sys
import tomllib
from dataclasses import dataclass
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from app.config import Settings, SmtpSecurity, _is_loopback

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_UNIT_SECONDS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNIT_SECONDS |= {"h": 3600, "hour": 3600}


@dataclass(frozen=True, slots=True)
class Rate:
    """A configured rate: `amount` messages per `per_seconds` (1, 60 or 3600)."""

    amount: float
    per_seconds: int

    @property
    def per_second(self) -> float:
        return self.amount / self.per_seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        match = _RATE.match(text)
        if match is None or float(match.group(1)) <= 0:
            raise ValueError('a rate is "N/s", "N/min" or "N/h" with N > 0')
        return cls(float(match.group(1)), _UNIT_SECONDS[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RelayEntry(_Strict):
    """One `[relays.NAME]` table as written; unset fields fall back to POCHTA_SMTP_*."""

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    security: SmtpSecurity = SmtpSecurity.none
    username: str | None = None
    password_env: str | None = None
    max_connections: int | None = Field(default=None, ge=1)
    rate: str | None = None
    helo_name: str | None = Field(default=None, min_length=1)
    timeout: float | None = Field(default=None, gt=0)
    tls_verify: bool | None = None
    ca_file: str | None = None

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            Rate.parse(value)
        return value

    @model_validator(mode="after")
    def _credentials(self) -> RelayEntry:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        if self.password_env is not None and self.password_env not in os.environ:
            raise ValueError(f"password_env: the variable {self.password_env} is not set")
        if (
            self.username is not None
            and self.security is SmtpSecurity.none
            and not _is_loopback(self.host)
        ):
            raise ValueError(f"security: none would send the password in clear to {self.host}")
        return self


class RouteEntry(_Strict):
    """One `[[routes]]` table: conditions (all given must match) and relays in order."""

    tenant: str | None = None
    sender_domain: str | None = None
    tag: str | None = None
    relays: list[str] = Field(min_length=1)

    @property
    def is_default(self) -> bool:
        return self.tenant is None and self.sender_domain is None and self.tag is None


class RelaysFile(_Strict):
    relays: dict[str, RelayEntry] = Field(min_length=1)
    routes: list[RouteEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _routes_name_relays(self) -> RelaysFile:
        for index, route in enumerate(self.routes):
            for name in route.relays:
                if name not in self.relays:
                    raise ValueError(f"routes[{index}].relays: no relay named {name!r}")
        if not any(route.is_default for route in self.routes):
            raise ValueError("routes: a default route (one without conditions) is required")
        return self


@dataclass(frozen=True, slots=True)
class Relay:
    """A relay as the worker uses it: its name, its session settings, its limits."""

    name: str
    settings: Settings
    max_connections: int | None = None
    rate: Rate | None = None

    @property
    def address(self) -> str:
        return f"{self.settings.smtp_host}:{self.settings.smtp_port}"

    @property
    def label(self) -> str:
        """What an attempt records as its relay: `name host:port`."""
        return f"{self.name} {self.address}"

    @property
    def limited(self) -> bool:
        return self.max_connections is not None or self.rate is not None


@dataclass(frozen=True, slots=True)
class Route:
    tenant: str | None
    sender_domain: str | None
    tag: str | None
    relays: tuple[Relay, ...]

    def matches(self, tenant: str, sender_domain: str, tags: list[str]) -> bool:
        return (
            (self.tenant is None or self.tenant == tenant)
            and (self.sender_domain is None or self.sender_domain == sender_domain)
            and (self.tag is None or self.tag in tags)
        )


@dataclass(frozen=True, slots=True)
class Relays:
    """Every relay by name, and the routes in the order they are tried."""

    by_name: dict[str, Relay]
    routes: tuple[Route, ...]

    def route_for(self, *, tenant: str, from_header: str, tags: list[str]) -> tuple[Relay, ...]:
        """The relays of the first route that matches, in order of preference."""
        if len(self.routes) == 1:
            return self.routes[0].relays  # the default alone: nothing to parse per message
        domain = email.utils.parseaddr(from_header)[1].rpartition("@")[2].lower()
        for route in self.routes:
            if route.matches(tenant, domain, tags):
                return route.relays
        raise AssertionError("a default route always matches")  # checked at load


class RelaysFileError(Exception):
    """The relays file is unreadable or wrong; the message names the key."""


def _relay(name: str, entry: RelayEntry, base: Settings) -> Relay:
    password = os.environ[entry.password_env] if entry.password_env else None
    updates: dict[str, Any] = {
        "smtp_host": entry.host,
        "smtp_port": entry.port,
        "smtp_security": entry.security,
        "smtp_username": entry.username,
        "smtp_password": None if password is None else SecretStr(password),
    }
    for field, setting in (
        ("helo_name", "smtp_helo_name"),
        ("timeout", "smtp_timeout"),
        ("tls_verify", "smtp_tls_verify"),
        ("ca_file", "smtp_ca_file"),
    ):
        if getattr(entry, field) is not None:
            updates[setting] = getattr(entry, field)
    rate = Rate.parse(entry.rate) if entry.rate else None
    return Relay(name, base.model_copy(update=updates), entry.max_connections, rate)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{loc}: {message}" if loc else message


def parse_relays(text: str, base: Settings) -> Relays:
    """The relays of a file's text; RelaysFileError naming the first bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RelaysFileError(f"not TOML: {error}") from None
    try:
        parsed = RelaysFile.model_validate(data)
    except ValidationError as error:
        raise RelaysFileError(_describe(error)) from None
    by_name = {name: _relay(name, entry, base) for name, entry in parsed.relays.items()}
    routes = tuple(
        Route(r.tenant, r.sender_domain, r.tag, tuple(by_name[n] for n in r.relays))
        for r in parsed.routes
    )
    return Relays(by_name, routes)


def load_relays(settings: Settings) -> Relays:
    """The relays file's relays, or the one relay of POCHTA_SMTP_* called `default`."""
    path = settings.relays_file
    if path is None:
        default = Relay("default", settings)
        return Relays({"default": default}, (Route(None, None, None, (default,)),))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise RelaysFileError(f"cannot read: {error.strerror}") from None
    return parse_relays(text, settings)


_cache: tuple[Settings, Relays] | None = None


def get_relays(settings: Settings) -> Relays:
    """This process's relays, read once per Settings object (tests make new ones)."""
    global _cache
    if _cache is None or _cache[0] is not settings:
        _cache = (settings, load_relays(settings))
    return _cache[1]


def load_relays_or_exit(settings: Settings) -> Relays:
    """At a command's start: a bad relays file ends the process with one line naming the key."""
    try:
        return get_relays(settings)
    except RelaysFileError as error:
        print(f"pochta: bad relays file {settings.relays_file}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
