"""The `pochta` command: api, worker, scheduler, migrate, keys, sink, dev."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from app.config import LogFormat, Settings, load_settings_or_exit
from app.logs import configure_logging
from app.send import add_arguments as add_send_arguments


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def _handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def migrations_dir() -> Path:
    """migrations/ beside the package in a checkout, or in the working directory."""
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (base / "migrations" / "env.py").exists():
            return base / "migrations"
    raise SystemExit("pochta: cannot find the migrations/ directory")


def run_migrations() -> None:
    """Upgrade the configured database to the latest schema (a no-op when it is there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    command.upgrade(config, "head")


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> None:
    run_migrations()
    print("database is at the latest schema")


def cmd_api(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from app.metrics import use_private_multiprocess_dir

    # Before uvicorn starts its --workers: they inherit it, /metrics adds them up.
    use_private_multiprocess_dir("api")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        proxy_headers=False,
    )


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from app.metrics import use_private_multiprocess_dir
    from worker.celery_app import QUEUE, get_celery

    # Before the pool forks: its processes count there, this one serves the sum.
    use_private_multiprocess_dir("worker")
    from worker.metrics import serve

    serve(settings)
    # JSON logs are one object a line: no banner (--quiet) among them.
    quiet = ["--quiet"] if settings.log_format is LogFormat.json else []
    argv = [*quiet, "worker", "-Q", QUEUE, "--loglevel", settings.log_level.upper()]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    argv += ["--concurrency", str(args.concurrency or os.cpu_count() or 1)]
    get_celery().worker_main(argv)


def cmd_scheduler(_: argparse.Namespace, settings: Settings) -> None:
    from worker.scheduler import run

    run(_stop_on_signals())


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    from app.db import session_scope
    from app.keys.service import BadLabel, create_key

    try:
        with session_scope() as session:
            key, secret = create_key(session, tenant=args.tenant, name=args.name)
            key_id = key.id
    except BadLabel as error:
        raise SystemExit(f"pochta: {error}") from None
    print(f"created {key_id} for tenant {args.tenant}; the key is shown once:")
    print(secret)


def cmd_keys_list(_: argparse.Namespace, settings: Settings) -> None:
    from app.db import session_scope
    from app.keys.service import list_keys

    with session_scope() as session:
        for key in list_keys(session):
            state = f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
            created = f"{key.created_at:%Y-%m-%dT%H:%M:%SZ}"
            print(f"{key.id}\t{key.tenant}\t{key.name}\t{created}\t{state}")


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from app.db import session_scope
    from app.errors import NotFound
    from app.keys.service import revoke_key

    try:
        with session_scope() as session:
            revoked_now = revoke_key(session, key_id=args.id)
    except NotFound as error:
        raise SystemExit(f"pochta: {error}") from None
    # Exit 0 either way: the key is revoked, which is what was asked (README).
    print(f"revoked {args.id}" if revoked_now else f"{args.id} was already revoked")


def cmd_send(args: argparse.Namespace, settings: Settings) -> None:
    from app.send import run

    raise SystemExit(run(args))


def cmd_sink(args: argparse.Namespace, settings: Settings) -> None:
    from app.sink import run_sink

    run_sink(args.host, args.port, Path(args.dir), _stop_on_signals())


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
    stop = _stop_on_signals()
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


Command = Callable[[argparse.Namespace, Settings], None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pochta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Command, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler)
        return command

    api = add("api", cmd_api, "serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    worker = add("worker", cmd_worker, "deliver queued messages through the relay")
    worker.add_argument("--concurrency", type=int, default=None, help="processes (default: CPUs)")
    add("scheduler", cmd_scheduler, "queue due, scheduled and stuck messages")
    add("migrate", cmd_migrate, "bring the database schema up to date")
    sink = add("sink", cmd_sink, "a local SMTP server that saves what it receives as .eml")
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=2525)
    sink.add_argument("--dir", default="var/sink")
    send = add("send", cmd_send, "send one email through the HTTP API; --wait for the outcome")
    add_send_arguments(send)
    dev = add("dev", cmd_dev, "run sink, API, worker and scheduler on the embedded defaults")
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--sink-port", type=int, default=2525)

    keys = sub.add_parser("keys", help="manage API keys", description="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key; prints it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", required=True)
    create.set_defaults(handler=cmd_keys_create)
    keys_sub.add_parser("list", help="one line per key").set_defaults(handler=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="a revoked key gets 401 from then on")
    revoke.add_argument("id")
    revoke.set_defaults(handler=cmd_keys_revoke)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_settings_or_exit()
    configure_logging(settings)
    handler: Command = args.handler
    handler(args, settings)


if __name__ == "__main__":
    main()
