"""The `pochta` command: api, worker, scheduler, migrate, keys, relays, sink, send, dev."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from app.bounces.rules import check_rules_file
from app.cli.database import DatabaseNeed, check_database
from app.cli.dev import cmd_dev
from app.cli.keys import cmd_keys_create, cmd_keys_list, cmd_keys_revoke
from app.cli.migrate import cmd_migrate
from app.cli.relays import cmd_relays
from app.cli.serve import cmd_api, cmd_scheduler, cmd_send, cmd_sink, cmd_worker
from app.config import Settings, load_settings_or_exit
from app.logs import configure_logging
from app.relays.config import load_relays_or_exit
from app.send import add_arguments as add_send_arguments

Command = Callable[[argparse.Namespace, Settings], None]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pochta", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Command, database: DatabaseNeed, help_text: str
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(handler=handler, database=database)
        return command

    serves = DatabaseNeed.MIGRATED_IF_LOCAL
    api = add("api", cmd_api, serves, "serve the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    worker = add("worker", cmd_worker, serves, "deliver queued messages through the relay")
    worker.add_argument("--concurrency", type=int, default=None, help="processes (default: CPUs)")
    add("scheduler", cmd_scheduler, serves, "queue due, scheduled and stuck messages")
    add("relays", cmd_relays, DatabaseNeed.MIGRATED, "each relay's state, rate and open sessions")
    add("migrate", cmd_migrate, DatabaseNeed.CREATES, "bring the database schema up to date")
    sink = add(
        "sink",
        cmd_sink,
        DatabaseNeed.NONE,
        "a local SMTP server that saves what it receives as .eml",
    )
    sink.add_argument("--host", default="127.0.0.1")
    sink.add_argument("--port", type=int, default=2525)
    sink.add_argument("--dir", default="var/sink")
    send = add(
        "send",
        cmd_send,
        DatabaseNeed.NONE,
        "send one email through the HTTP API; --wait for the outcome",
    )
    add_send_arguments(send)
    dev = add(
        "dev",
        cmd_dev,
        DatabaseNeed.CREATES,
        "run sink, API, worker and scheduler on the embedded defaults",
    )
    dev.add_argument("--port", type=int, default=8000)
    dev.add_argument("--sink-port", type=int, default=2525)

    keys = sub.add_parser("keys", help="manage API keys", description="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key; prints it once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", required=True)
    create.set_defaults(handler=cmd_keys_create, database=DatabaseNeed.MIGRATED)
    listing = keys_sub.add_parser("list", help="one line per key")
    listing.set_defaults(handler=cmd_keys_list, database=DatabaseNeed.MIGRATED)
    revoke = keys_sub.add_parser("revoke", help="a revoked key gets 401 from then on")
    revoke.add_argument("id")
    revoke.set_defaults(handler=cmd_keys_revoke, database=DatabaseNeed.MIGRATED)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_settings_or_exit()
    check_rules_file(settings)
    # A bad relays file stops every command, as a bad setting does (SPEC §10).
    load_relays_or_exit(settings)
    configure_logging(settings)
    check_database(settings, args.database)
    handler: Command = args.handler
    handler(args, settings)
