"""`pochta dev`: the embedded stack with a local sink, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from app.cli.migrate import cmd_migrate
from app.cli.serve import stop_on_signals
from app.config import Settings


def cmd_dev(args: argparse.Namespace, settings: Settings) -> None:
    """Migrate, make a key, and run sink, API, worker and scheduler until Ctrl-C."""
    from app.db import session_scope
    from app.keys.service import create_key

    cmd_migrate(args, settings)
    with session_scope() as session:
        _, secret = create_key(session, tenant="dev", name="pochta dev")
    env = dict(os.environ)
    env.update(POCHTA_SMTP_HOST="127.0.0.1", POCHTA_SMTP_PORT=str(args.sink_port))
    env.update(POCHTA_SMTP_SECURITY="none")
    env.pop("POCHTA_SMTP_USERNAME", None)
    env.pop("POCHTA_SMTP_PASSWORD", None)
    me = [sys.executable, "-m", "app.cli"]
    commands = {
        "sink": [*me, "sink", "--port", str(args.sink_port)],
        "api": [*me, "api", "--port", str(args.port)],
        "worker": [*me, "worker", "--concurrency", "1"],
        "scheduler": [*me, "scheduler"],
    }
    stop = stop_on_signals()
    children = {name: subprocess.Popen(argv, env=env) for name, argv in commands.items()}
    try:
        if _wait_until_up(f"http://127.0.0.1:{args.port}/healthz", children, stop):
            _print_welcome(secret, args.port, args.sink_port)
        while not stop.is_set() and all(c.poll() is None for c in children.values()):
            stop.wait(0.5)
    finally:
        _stop_children(children)
    failed = [name for name, child in children.items() if child.returncode not in (0, -15)]
    if failed and not stop.is_set():
        raise SystemExit(f"pochta dev: {', '.join(failed)} stopped unexpectedly")


def _wait_until_up(
    url: str, children: dict[str, subprocess.Popen[bytes]], stop: threading.Event
) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not stop.is_set():
        if any(child.poll() is not None for child in children.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (our own loopback URL)
                return True
        except OSError:
            stop.wait(0.2)
    return False


def _print_welcome(secret: str, port: int, sink_port: int) -> None:
    body = (
        '{"from": "Вася Пупкин <vasiapupkin@ya.ru>", "to": ["billy@example.org"], '
        '"subject": "Hello Billy", "text": "Sent through Pochta"}'
    )
    print(
        f"\nPochta is running: API http://127.0.0.1:{port}, sink 127.0.0.1:{sink_port} "
        "(messages land in var/sink/)\n"
        f"API key: {secret}\n"
        "Send one:\n"
        f"  curl -sS http://127.0.0.1:{port}/v1/messages -H 'Authorization: Bearer {secret}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )


def _stop_children(children: dict[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for child in children.values():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
