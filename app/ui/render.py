"""Rendering pages: the Jinja2 templates (autoescaped) and the filters they use."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse

from app.clock import utcnow
from app.messages.states import FINAL

TEMPLATES = Path(__file__).parent / "templates"


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """A moment as people say it: "12 s ago", "3 h ago", "in 5 min"."""
    if moment is None:
        return "—"
    seconds = ((now or utcnow()) - moment).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 5:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            return f"in {amount}" if future else f"{amount} ago"
    return "just now"  # unreachable: seconds >= 5 matched "s"


def iso(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else ""


def reply_class(code: int | None) -> str:
    """The colour of an SMTP reply code: 2xx ok, 3xx more to come, 4xx temporary, 5xx permanent."""
    if code is None:
        return "code-none"
    return {2: "code-ok", 3: "code-more", 4: "code-temp", 5: "code-perm"}.get(
        code // 100, "code-none"
    )


def in_flight(status: object) -> bool:
    """Whether a message's status may still change by itself (the list refreshes those rows)."""
    return status not in FINAL


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.filters.update(ago=ago, iso=iso, reply_class=reply_class)
_environment.tests.update(in_flight=in_flight)
# The header's links: one per page of the dashboard.
_environment.globals["nav"] = [
    ("/ui/messages", "Messages"),
    ("/ui/events", "Events"),
    ("/ui/webhooks", "Webhooks"),
    ("/ui/suppressions", "Suppressions"),
    ("/ui/relays", "Relays"),
]


def render(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The page `name` with context; every value is escaped unless a template says otherwise."""
    return HTMLResponse(_environment.get_template(name).render(**context), status_code=status_code)
