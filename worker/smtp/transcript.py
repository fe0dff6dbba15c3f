"""Recording an attempt's SMTP dialogue as it passes, on top of smtplib (SPEC §11).

smtplib sends every command through putcmd() and reads every reply with getreply(),
the greeting, EHLO, STARTTLS and AUTH included; the two subclasses here note each as a
plain append, and only a transcript that is kept is formatted (Transcript.lines()).
Nothing secret is ever appended: AUTH keeps its mechanism and loses its arguments, and
every line a client sends while an AUTH exchange goes on (the base64 answers to the
relay's 334 challenges) is `***`. The DATA payload is noted as its size only.
"""

from __future__ import annotations

import smtplib
import time
from typing import Any

from app.messages.relay_results import TranscriptLine, relay_text

HIDDEN = "***"


class Transcript:
    """One attempt's dialogue: (monotonic time, reply code or None for a line out, text)."""

    __slots__ = ("_entries", "started")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._entries: list[tuple[float, int | None, str | bytes]] = []

    def sent(self, line: str) -> None:
        self._entries.append((time.monotonic(), None, line))

    def received(self, code: int, text: bytes) -> None:
        self._entries.append((time.monotonic(), code, text))

    def lines(self) -> tuple[TranscriptLine, ...]:
        """The dialogue as the API shows it; a multi-line reply is one line each, as sent."""
        lines: list[TranscriptLine] = []
        for at, code, text in self._entries:
            at_ms = max(0, round((at - self.started) * 1000))
            if code is None:
                assert isinstance(text, str)
                lines.append(TranscriptLine(at_ms, "out", text))
                continue
            assert isinstance(text, bytes)
            parts = relay_text(text).split("\n")
            for index, part in enumerate(parts):
                if code < 0:
                    # smtplib could not read a code: keep what it kept of the line.
                    lines.append(TranscriptLine(at_ms, "in", part))
                    continue
                separator = "-" if index < len(parts) - 1 else " "
                lines.append(TranscriptLine(at_ms, "in", f"{code}{separator}{part}".rstrip()))
        return tuple(lines)


class RecordingClient(smtplib.SMTP):
    """smtplib.SMTP that notes its commands and replies in `transcript`, if one is set."""

    transcript: Transcript | None = None
    _in_auth = False

    def putcmd(self, cmd: str, args: str = "") -> None:
        # Tracked whether or not a transcript is attached: one attached mid-exchange must
        # still hide the rest of it.
        if self._in_auth:
            line = HIDDEN
        elif cmd.upper() == "AUTH":
            self._in_auth = True
            line = f"AUTH {args.split(' ', 1)[0]} {HIDDEN}"
        else:
            line = f"{cmd.upper()} {args}" if args else cmd.upper()
        if self.transcript is not None:
            self.transcript.sent(line)
        super().putcmd(cmd, args)

    def getreply(self) -> tuple[int, bytes]:
        code, text = super().getreply()
        # Only a 334 challenge keeps an AUTH exchange going (RFC 4954 §4).
        self._in_auth = self._in_auth and code == 334
        if self.transcript is not None:
            self.transcript.received(code, text)
        return code, text

    def note_payload(self, size: int) -> None:
        """The DATA content went out: its size, never the content itself."""
        if self.transcript is not None:
            self.transcript.sent(f"[{size} bytes]")


class RecordingSMTP(RecordingClient):
    """A plain (or STARTTLS) session that records into the transcript it is given."""

    def __init__(self, *args: Any, transcript: Transcript | None, **kwargs: Any) -> None:
        # Set before connecting: the constructor reads the greeting.
        self.transcript = transcript
        super().__init__(*args, **kwargs)


class RecordingSMTP_SSL(RecordingClient, smtplib.SMTP_SSL):
    """An implicit-TLS session that records into the transcript it is given."""

    def __init__(self, *args: Any, transcript: Transcript | None, **kwargs: Any) -> None:
        self.transcript = transcript
        super().__init__(*args, **kwargs)
