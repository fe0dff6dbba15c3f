"""The one Settings object: every knob Pochta has, read from POCHTA_* variables or .env."""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

MiB = 1024 * 1024

PositiveSeconds = Annotated[float, Field(gt=0)]


class SmtpSecurity(StrEnum):
    none = "none"
    starttls = "starttls"
    tls = "tls"


class Transcripts(StrEnum):
    """Which attempts keep their SMTP dialogue (SPEC §11)."""

    failures = "failures"
    all = "all"
    none = "none"


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# "5,300,1800": a list written the way an operator writes it in an environment variable.
DelaySchedule = Annotated[
    tuple[Annotated[float, Field(gt=0)], ...],
    NoDecode,
    BeforeValidator(_comma_separated),
    Field(min_length=1),
]


class LogFormat(StrEnum):
    text = "text"
    json = "json"


_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")

_BROKER_SCHEMES = frozenset({"redis", "rediss", "redis+socket"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Configuration; see the README's table for what each one means."""

    model_config = SettingsConfigDict(
        env_prefix="POCHTA_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///./var/pochta.db"
    broker_url: str = "sqla+sqlite:///./var/broker.db"

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_security: SmtpSecurity = SmtpSecurity.none
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: PositiveSeconds = 30.0
    smtp_helo_name: str = Field(default_factory=socket.getfqdn, min_length=1)
    smtp_tls_verify: bool = True
    smtp_ca_file: str | None = None
    # A connection is reused for many messages; these bound how long one lives.
    smtp_max_messages_per_connection: int = Field(default=1000, ge=1)
    smtp_max_idle_seconds: PositiveSeconds = 30.0

    retry_base_seconds: PositiveSeconds = 300.0
    retry_max_seconds: PositiveSeconds = 4000.0
    retry_max_attempts: int | None = Field(default=None, ge=1)
    retry_max_age_seconds: PositiveSeconds = 5 * 24 * 3600.0

    scheduler_interval_seconds: PositiveSeconds = 1.0
    sending_lease_seconds: PositiveSeconds = 300.0
    # A message handed to the broker but not claimed within this is handed over again.
    dispatch_lease_seconds: PositiveSeconds = 120.0
    # How long an Idempotency-Key's answer is kept for replay, per API key.
    idempotency_ttl_seconds: PositiveSeconds = 24 * 3600.0

    max_request_bytes: int = Field(default=15 * MiB, ge=1024)
    max_message_bytes: int = Field(default=10 * MiB, ge=1024)
    max_recipients: int = Field(default=50, ge=1)
    # Caps on the submit body (SPEC §2), counted before any item is validated.
    max_reply_to: int = Field(default=10, ge=0)
    max_attachments: int = Field(default=100, ge=0)
    max_headers: int = Field(default=100, ge=0)
    max_metadata_keys: int = Field(default=50, ge=0)
    max_metadata_key_chars: int = Field(default=40, ge=1)
    max_metadata_value_chars: int = Field(default=500, ge=1)
    max_send_ahead_seconds: PositiveSeconds = 30 * 24 * 3600.0

    log_format: LogFormat = LogFormat.text
    log_level: str = "INFO"

    # `pochta worker` serves its own Prometheus metrics here (0: not at all); see README.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9101, ge=0, le=65535)

    # Signs VERP tokens and dashboard sessions, encrypts webhook secrets (SPEC §9); unset,
    # the embedded mode keeps one in var/secret.key (app/secret_key.py).
    secret_key: SecretStr | None = None

    # Events and webhooks (SPEC §7).
    event_retention_days: int = Field(default=30, ge=1)
    webhook_timeout_seconds: PositiveSeconds = 15.0
    webhook_retry_schedule: DelaySchedule = (5, 300, 1800, 7200, 18000, 36000, 36000)
    webhook_max_in_flight: int = Field(default=10, ge=1)
    webhook_secret_overlap_seconds: float = Field(default=86400.0, ge=0)
    webhook_disable_after_seconds: PositiveSeconds = 432000.0
    webhook_allow_private: bool = False
    # Threads of `pochta worker`'s webhook pool: requests open at once from one worker.
    webhook_worker_threads: int = Field(default=20, ge=1)

    # Bounces and suppressions (SPEC §8, §9).
    bounce_rules_file: Path | None = None
    bounce_domain: str | None = None
    suppression_hard_bounce_days: int | None = Field(default=None, ge=1)
    # `pochta bounces` serves its Prometheus metrics here (0: not at all).
    bounces_metrics_host: str = "127.0.0.1"
    bounces_metrics_port: int = Field(default=9102, ge=0, le=65535)

    # Relays (SPEC §10); without a file, the one relay of POCHTA_SMTP_* is `default`.
    relays_file: Path | None = None
    relay_down_seconds: PositiveSeconds = 30.0
    relay_backoff_seconds: PositiveSeconds = 60.0

    # SMTP transcripts kept on attempts (SPEC §11).
    transcripts: Transcripts = Transcripts.failures

    # A dashboard sign-in lasts this long (SPEC §11); a revoked key ends it at once.
    ui_session_seconds: PositiveSeconds = 12 * 3600.0

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        # Celery would retry an unknown transport forever while the API answers 202.
        scheme = value.partition("://")[0].lower()
        if "://" not in value or not (scheme in _BROKER_SCHEMES or scheme.startswith("sqla+")):
            raise ValueError("must be redis://host:port/db (or rediss://) or sqla+sqlite:///path")
        return value

    @field_validator("bounce_domain")
    @classmethod
    def _bounce_domain(cls, value: str | None) -> str | None:
        # It goes into every MAIL FROM: a plain host name, as its A-label, lower case.
        if value is None or not value.strip():
            return None
        try:
            domain = value.strip().rstrip(".").encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise ValueError("must be a domain name, e.g. bounces.example.org") from None
        if not _HOSTNAME.fullmatch(domain):
            raise ValueError("must be a domain name, e.g. bounces.example.org")
        return domain

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("POCHTA_RETRY_MAX_SECONDS must not be below POCHTA_RETRY_BASE_SECONDS")
        if self.secret_key is None and not self.database_url.startswith("sqlite"):
            # Every host must sign and decrypt alike; a file of one host's own would not do.
            raise ValueError(
                "POCHTA_SECRET_KEY is required with a database other than SQLite "
                "(every host of the deployment must share it)"
            )
        if (self.smtp_username is None) != (self.smtp_password is None):
            raise ValueError("POCHTA_SMTP_USERNAME and POCHTA_SMTP_PASSWORD go together")
        if (
            self.smtp_username is not None
            and self.smtp_security is SmtpSecurity.none
            and not _is_loopback(self.smtp_host)
        ):
            raise ValueError(
                "POCHTA_SMTP_SECURITY=none would send POCHTA_SMTP_PASSWORD in clear to "
                f"{self.smtp_host}; use starttls or tls"
            )
        return self

    @property
    def relay(self) -> str:
        """host:port of the relay, as recorded on every attempt."""
        return f"{self.smtp_host}:{self.smtp_port}"


def describe_error(error: ValidationError) -> str:
    """One line naming the first bad setting, for a process that must stop at start."""
    first: dict[str, Any] = dict(error.errors()[0])
    loc = [str(part) for part in first.get("loc", ())]
    message = str(first.get("msg", "invalid"))
    if not loc:
        return message.removeprefix("Value error, ")
    name = "POCHTA_" + loc[0].upper()
    return f"{name}: {message} (got {first.get('input')!r})"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once; tests clear the cache to change them."""
    return Settings()


def load_settings_or_exit() -> Settings:
    """Settings for a command's start: a bad value ends the process with one line."""
    try:
        return get_settings()
    except ValidationError as error:
        print(f"pochta: bad setting: {describe_error(error)}", file=sys.stderr)
        raise SystemExit(2) from None
