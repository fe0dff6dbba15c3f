"""What one delivery attempt found out, as plain data passed from the worker to the domain."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from app.messages.states import RecipientStatus, Stage

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)")


def relay_text(raw: bytes | str) -> str:
    """What a relay sent, as text the database can store: invalid UTF-8 and NUL (which no
    PostgreSQL text or JSON string holds) become U+FFFD. A reply that could not be stored
    would fail its whole group's recording on every retry."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text.replace("\x00", "\ufffd")


@dataclass(frozen=True, slots=True)
class Reply:
    """An SMTP reply: the code, its RFC 3463 enhanced code if any, and the text."""

    code: int
    enhanced: str | None
    text: str

    @classmethod
    def parse(cls, code: int, raw: bytes | str) -> Reply:
        """Split smtplib's (code, text) into code, enhanced code and text, lines kept."""
        lines = relay_text(raw).split("\n")
        match = _ENHANCED.match(lines[0])
        enhanced = None
        # The enhanced code must agree with the reply's class to be one (RFC 3463 §2).
        if match and match.group(1) == str(code)[0]:
            enhanced = ".".join(match.groups())
            lines = [
                line[len(m.group(0)) :] if (m := _ENHANCED.match(line)) else line for line in lines
            ]
        return cls(code=code, enhanced=enhanced, text="\n".join(lines))

    @property
    def is_positive(self) -> bool:
        return 200 <= self.code < 400

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced + ' ' if self.enhanced else ''}{self.text}"


@dataclass(slots=True)
class RecipientResult:
    """How one recipient came out of an attempt."""

    status: RecipientStatus
    reply: Reply | None = None
    # Pochta's own finding when the relay said nothing about it (RFC 3463 code and text).
    enhanced: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """One line of an attempt's SMTP dialogue, milliseconds after the attempt began."""

    at_ms: int
    dir: Literal["out", "in"]
    line: str


@dataclass(slots=True)
class AttemptResult:
    """The whole attempt: where it ended, the reply or error that ended it, each recipient."""

    started_at: datetime
    relay: str
    stage: Stage = Stage.connect
    reply: Reply | None = None
    enhanced: str | None = None
    error: str | None = None
    finished_at: datetime | None = None
    # The relay asked to slow down (SPEC §10): what is still open is tried again then,
    # when the relay's pause ends, not after the retry backoff.
    retry_at: datetime | None = None
    recipients: dict[str, RecipientResult] = field(default_factory=dict)
    # The dialogue, when POCHTA_TRANSCRIPTS keeps it for this attempt (SPEC §11).
    transcript: tuple[TranscriptLine, ...] | None = None
