"""`pochta migrate`: the schema, from the migrations/ directory beside the package."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from app.config import Settings


def find_migrations_dir() -> Path | None:
    """migrations/ beside the package in a checkout, or in the working directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (base / "migrations" / "env.py").exists():
            return base / "migrations"
    return None


def migrations_dir() -> Path:
    found = find_migrations_dir()
    if found is None:
        raise SystemExit("pochta: cannot find the migrations/ directory")
    return found


def run_migrations() -> None:
    """Upgrade the configured database to the latest schema (a no-op when it is there)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    command.upgrade(config, "head")


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> None:
    from app.cli.database import database_errors

    # Alembic names each plugin it sets up at INFO: noise around what migrate has to say.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    with database_errors(settings):
        run_migrations()
    print("database is at the latest schema")
