"""`pochta dev`: the embedded stack with a local sink, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from app import processes
from app.cli.dev_key import dev_key, key_file
from app.cli.migrate import cmd_migrate
from app.cli.serve import stop_on_signals
from app.config import Settings
from app.secret_key import secret_key

LOOPBACK = "127.0.0.1"
DEV_BOUNCE_DOMAIN = "bounces.localhost"


def cmd_dev(args: argparse.Namespace, settings: Settings) -> None:
    """Migrate, find or make the dev key, and run sink, bounces, API, worker and scheduler
    until Ctrl-C."""
    # Before anything is started or written: a second `pochta dev` would otherwise find
    # the first one's API ready, print a key of its own, and then die on the sink's port.
    refuse_taken_ports(
        [
            ("the API", "--port", args.port),
            ("the sink", "--sink-port", args.sink_port),
            ("pochta bounces", "--bounces-port", args.bounces_port),
        ]
    )
    cmd_migrate(args, settings)
    secret_key(settings)  # var/secret.key, before the children race to make it
    kept_in = key_file(settings)
    secret, reused = dev_key(kept_in)
    env = dict(os.environ)
    env.update(POCHTA_SMTP_HOST=LOOPBACK, POCHTA_SMTP_PORT=str(args.sink_port))
    env.update(POCHTA_SMTP_SECURITY="none")
    # A webhook receiver on this machine is what a developer points an endpoint at.
    env.update(POCHTA_WEBHOOK_ALLOW_PRIVATE="true")
    env.pop("POCHTA_SMTP_USERNAME", None)
    env.pop("POCHTA_SMTP_PASSWORD", None)
    # Every message goes out with a VERP MAIL FROM that `pochta bounces` below reads.
    env["POCHTA_BOUNCE_DOMAIN"] = settings.bounce_domain or DEV_BOUNCE_DOMAIN
    me = [sys.executable, "-m", "app.cli"]
    commands = {
        "sink": [*me, "sink", "--port", str(args.sink_port)],
        "bounces": [*me, "bounces", "--port", str(args.bounces_port)],
        "api": [*me, "api", "--port", str(args.port)],
        "worker": [*me, "worker", "--concurrency", "1"],
        "scheduler": [*me, "scheduler"],
    }
    stop = stop_on_signals()
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        # Each child leads its own process group, which processes.stop() ends whole
        # (Celery's pool too); and each dies with this process if it is killed.
        for name, argv in commands.items():
            children[name] = processes.spawn(argv, env=env)
        if _wait_until_up(f"http://{LOOPBACK}:{args.port}/healthz", children, stop):
            _print_welcome(secret, reused, kept_in, args)
        while not stop.is_set() and all(c.poll() is None for c in children.values()):
            stop.wait(0.5)
    finally:
        processes.stop(children.values())
    failed = [name for name, child in children.items() if child.returncode not in (0, -15)]
    if failed and not stop.is_set():
        raise SystemExit(f"pochta dev: {', '.join(failed)} stopped unexpectedly")


def refuse_taken_ports(ports: list[tuple[str, str, int]]) -> None:
    """Exit with one line naming the first port (what, its option, number) we could not bind."""
    for what, option, port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As uvicorn and aiosmtpd bind: a port left in TIME_WAIT by a dev that just
            # stopped is free to them, one with a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((LOOPBACK, port))
            except OSError as error:
                raise SystemExit(
                    f"pochta dev: port {port} ({what}) on {LOOPBACK} is taken "
                    f"({error.strerror}): is another `pochta dev` running? "
                    f"Stop it, or choose another port with {option}"
                ) from None


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


def _print_welcome(secret: str, reused: bool, kept_in: Path, args: argparse.Namespace) -> None:
    port, sink_port = args.port, args.sink_port
    body = (
        '{"from": "Вася Пупкин <vasiapupkin@ya.ru>", "to": ["billy@example.org"], '
        '"subject": "Hello Billy", "text": "Sent through Pochta"}'
    )
    whence = "the one kept in" if reused else "new, kept for the next `pochta dev` in"
    print(
        f"\nPochta is running: API http://{LOOPBACK}:{port}, sink {LOOPBACK}:{sink_port} "
        f"(messages land in var/sink/), bounce reports {LOOPBACK}:{args.bounces_port}\n"
        f"API key ({whence} {kept_in}): {secret}\n"
        f"Dashboard: http://{LOOPBACK}:{port}/ui (sign in with that key)\n"
        "For `pochta send` and the README's curl lines:\n"
        f"  export POCHTA_API_KEY={secret}\n"
        "Send one:\n"
        f"  curl -sS http://{LOOPBACK}:{port}/v1/messages -H 'Authorization: Bearer {secret}' "
        f"-H 'Content-Type: application/json' -d '{body}'\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )
