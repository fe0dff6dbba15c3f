"""An attempt's SMTP transcript (SPEC §11) as lines of a terminal session."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.ui.render import reply_class


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    at_ms: int
    outgoing: bool
    text: str
    # For a reply line: the colour of its code; empty for what Pochta sent.
    code_class: str


def transcript_lines(transcript: list[dict[str, Any]] | None) -> list[TranscriptLine] | None:
    """The stored dialogue as display lines; None when the attempt kept none."""
    if transcript is None:
        return None
    lines = []
    for entry in transcript:
        text = str(entry.get("line", ""))
        outgoing = entry.get("dir") == "out"
        code = text[:3]
        at_ms = entry.get("at_ms")
        lines.append(
            TranscriptLine(
                at_ms=at_ms if isinstance(at_ms, int) else 0,
                outgoing=outgoing,
                text=text,
                code_class=""
                if outgoing
                else reply_class(int(code) if code.isdigit() and len(code) == 3 else None),
            )
        )
    return lines
