"""`pochta migrate`: the schema, from the migrations/ directory beside the package."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.config import Settings


def migrations_dir() -> Path:
    """migrations/ beside the package in a checkout, or in the working directory."""
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
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
