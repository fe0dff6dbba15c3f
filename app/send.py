"""`pochta send`: one email through the HTTP API, as any client would send it."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

import httpx

from app.messages.states import FINAL

DEFAULT_API = "http://127.0.0.1:8000"
KEY_ENV = "POCHTA_API_KEY"
POLL_SECONDS = 0.5
# Long enough for a relay that greylists once with a short retry, short enough for a shell.
DEFAULT_TIMEOUT_SECONDS = 60.0

EXIT_NOT_SENT = 1
EXIT_USAGE = 2
EXIT_TIMED_OUT = 3
EXIT_STATUSES = f"""exit status:
  0  accepted (without --wait), or sent to every recipient (with --wait)
  {EXIT_NOT_SENT}  the API did not accept it (its problem is printed), or it is final
     but not sent to everyone: failed, partially_sent or canceled
  {EXIT_USAGE}  a usage error, no API key, or the API cannot be reached
  {EXIT_TIMED_OUT}  with --wait: not final when --timeout ran out (the message goes on)
"""


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUSES
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--from", dest="sender", required=True, metavar="ADDRESS", help="`addr` or `Name <addr>`"
    )
    parser.add_argument(
        "--to", action="append", required=True, metavar="ADDRESS", help="repeat for more"
    )
    parser.add_argument("--cc", action="append", default=[], metavar="ADDRESS", help="repeatable")
    parser.add_argument("--subject", default="")
    parser.add_argument("--text", help="the plain-text body")
    parser.add_argument("--html", help="the HTML body")
    parser.add_argument("--api", default=DEFAULT_API, help=f"the API's URL (default {DEFAULT_API})")
    parser.add_argument("--key", help=f"the API key (default: ${KEY_ENV})")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="poll until the message is final, telling each change on stderr, "
        "then print every recipient's reply",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"with --wait: stop waiting after this long (default {DEFAULT_TIMEOUT_SECONDS:g}; "
        "0 waits until the message is final)",
    )


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"from": args.sender, "to": args.to, "subject": args.subject}
    if args.cc:
        body["cc"] = args.cc
    if args.text is not None:
        body["text"] = args.text
    if args.html is not None:
        body["html"] = args.html
    return body


def _print_problem(response: httpx.Response) -> None:
    """The problem's detail, or its title and then each field it names."""
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text[:500]}
    errors = problem.get("errors") or []
    summary = problem.get("title") if errors else problem.get("detail") or problem.get("title")
    print(f"pochta send: {response.status_code} {summary or ''}", file=sys.stderr)
    for error in errors:
        print(f"  {error.get('loc')}: {error.get('message')}", file=sys.stderr)


def _print_final(message: dict[str, Any]) -> None:
    print(message["status"])
    for recipient in message["recipients"]:
        # Pochta's own note where no relay replied (suppressed, unreachable relay).
        reply = (recipient.get("smtp_reply") or recipient.get("error") or "").replace("\n", " ")
        fields = [
            recipient["email"],
            recipient["status"],
            str(recipient.get("smtp_code") or "-"),
            recipient.get("enhanced_code") or "-",
            reply,
        ]
        print("\t".join(fields))


def _attempt_line(attempt: dict[str, Any], next_at: str | None) -> str:
    """`attempt 1: deferred 451 4.7.1 Greylisted, next at 2026-…`."""
    said = attempt.get("smtp_reply") or attempt.get("error") or ""
    parts = [attempt["outcome"], attempt.get("smtp_code"), attempt.get("enhanced_code"), said]
    line = f"attempt {attempt['number']}: " + " ".join(str(p) for p in parts if p)
    line = line.replace("\n", " ")
    return f"{line}, next at {next_at}" if next_at else line


class _Progress:
    """Tells stderr what changed since the last poll: a new status, each new attempt."""

    def __init__(self) -> None:
        self.status: str | None = None
        self.attempts_told = 0

    def tell(self, message: dict[str, Any]) -> None:
        attempts = message.get("attempts") or []
        for attempt in attempts[self.attempts_told :]:
            # Only the latest deferral's next attempt is still ahead.
            ahead = attempt is attempts[-1] and attempt["outcome"] in {"deferred", "mixed"}
            next_at = message.get("next_attempt_at") if ahead else None
            print(_attempt_line(attempt, next_at), file=sys.stderr, flush=True)
        self.attempts_told = len(attempts)
        status = message["status"]
        # A deferral is told by its attempt line, with the time of the next one.
        if status != self.status and status != "deferred":
            print(status, file=sys.stderr, flush=True)
        self.status = status


def _wait(client: httpx.Client, message_id: str, timeout: float) -> dict[str, Any] | None:
    """Poll the message until it is final; None when the timeout runs out first."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    finals = {status.value for status in FINAL}
    progress = _Progress()
    while True:
        response = client.get(f"/v1/messages/{message_id}")
        response.raise_for_status()
        message: dict[str, Any] = response.json()
        progress.tell(message)
        if message["status"] in finals:
            return message
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)


def run(args: argparse.Namespace) -> int:
    """Submit, print the id, and with --wait the outcome; the exit status."""
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        print(f"pochta send: give --key or set {KEY_ENV}", file=sys.stderr)
        return EXIT_USAGE
    # httpx logs every request at INFO; a command's output is its own.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=args.api, headers=headers, timeout=30) as client:
            response = client.post("/v1/messages", json=_body(args))
            if response.status_code != 202:
                _print_problem(response)
                return EXIT_NOT_SENT
            message_id = response.json()["id"]
            print(message_id, flush=True)
            if not args.wait:
                return 0
            final = _wait(client, message_id, args.timeout)
    except httpx.HTTPStatusError as error:
        _print_problem(error.response)
        return EXIT_NOT_SENT
    except httpx.HTTPError as error:
        print(f"pochta send: cannot reach {args.api}: {error}", file=sys.stderr)
        return EXIT_USAGE
    if final is None:
        print(
            f"pochta send: {message_id} not final after {args.timeout:g}s; it goes on "
            f"(GET /v1/messages/{message_id})",
            file=sys.stderr,
        )
        return EXIT_TIMED_OUT
    _print_final(final)
    return 0 if final["status"] == "sent" else EXIT_NOT_SENT
