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

# Exit statuses: 0 sent; 1 refused by the API, or final but not (fully) sent;
# 2 a usage error or the API cannot be reached (argparse also exits 2).
EXIT_NOT_SENT = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
        "--wait", action="store_true", help="poll until the message is final and print the replies"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="with --wait: give up after this many seconds"
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
        reply = (recipient.get("smtp_reply") or "").replace("\n", " ")
        fields = [
            recipient["email"],
            recipient["status"],
            str(recipient.get("smtp_code") or "-"),
            recipient.get("enhanced_code") or "-",
            reply,
        ]
        print("\t".join(fields))


def _wait(client: httpx.Client, message_id: str, timeout: float | None) -> dict[str, Any] | None:
    """Poll the message until it is final; None when the timeout runs out first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    finals = {status.value for status in FINAL}
    while True:
        response = client.get(f"/v1/messages/{message_id}")
        response.raise_for_status()
        message: dict[str, Any] = response.json()
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
        print(f"pochta send: {message_id} not final after {args.timeout:g}s", file=sys.stderr)
        return EXIT_NOT_SENT
    _print_final(final)
    return 0 if final["status"] == "sent" else EXIT_NOT_SENT
