"""What a command needs of the database, checked before it starts and refused in one line.

Only `migrate` and `dev` may create a database: any other command that found no SQLite
file would otherwise make an empty one (and its var/ directory) wherever it was run, then
fail on the first query with a traceback.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from app.cli.migrate import find_migrations_dir
from app.config import Settings

VARIABLE = "POCHTA_DATABASE_URL"
# Alembic's default, which migrations/env.py keeps.
ALEMBIC_VERSION = "alembic_version"


class DatabaseNeed(Enum):
    """How much of the database a command needs before it may start."""

    NONE = "none"  # sink, send: no database at all
    CREATES = "creates"  # migrate, dev: a good URL; they make the database
    MIGRATED = "migrated"  # keys: there and at the latest schema, checked now
    # api, worker, scheduler: the same for a SQLite file; a server may be starting up
    # beside them (its /readyz says so), so it is not waited for here.
    MIGRATED_IF_LOCAL = "migrated-if-local"


def check_database(settings: Settings, need: DatabaseNeed) -> None:
    """Return if the database is fit for a command that needs this; else exit with one line."""
    if need is DatabaseNeed.NONE:
        return
    url = parse_url(settings.database_url)
    if need is DatabaseNeed.CREATES:
        return
    path = sqlite_file(url)
    if path is not None:
        if not path.is_file():
            _stop(f"no database at {path} ({VARIABLE}); `pochta migrate` creates it")
        _check_schema(url, _sqlite_without_creating(path))
    elif need is DatabaseNeed.MIGRATED:
        _check_schema(url, create_engine(url))


def parse_url(raw: str) -> URL:
    """The URL of POCHTA_DATABASE_URL, its driver loadable; exit 2 naming it if not."""
    try:
        url = make_url(raw)
        create_engine(url).dispose()  # loads the dialect and its driver, connects to nothing
    except NoSuchModuleError:
        _bad_setting(f"unknown kind of database {raw.partition(':')[0]!r}", raw)
    except ArgumentError:
        example = "sqlite:///./var/pochta.db or postgresql+psycopg://user:password@host/db"
        _bad_setting(f"not a database URL (e.g. {example})", raw)
    except ImportError as error:
        _bad_setting(f"the database driver is not installed ({error})", raw)
    except ValueError as error:
        _bad_setting(str(error), raw)
    return url


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; None for a server, memory, or a URI the user spelled."""
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return None
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


@contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """A database that cannot be reached or opened ends a one-shot command with one line."""
    try:
        yield
    except DBAPIError as error:
        _unusable(make_url(settings.database_url), error)


def _sqlite_without_creating(path: Path) -> Engine:
    # mode=rw opens an existing file and fails on a missing one, where a plain connect
    # would create it: the file may vanish between the check above and this connect.
    uri = f"file:{quote(str(path.resolve()))}?mode=rw"
    return create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))


def _check_schema(url: URL, engine: Engine) -> None:
    try:
        with engine.connect() as connection:
            current = _current_revisions(connection)
    except DBAPIError as error:
        _unusable(url, error)
    finally:
        engine.dispose()
    if not current:
        _stop(f"the database at {_shown(url)} is not migrated; run `pochta migrate`")
    older = _older_than_latest(current)
    if older:
        _stop(
            f"the database at {_shown(url)} has an older schema ({', '.join(sorted(older))}); "
            "run `pochta migrate`"
        )


def _current_revisions(connection: Connection) -> set[str]:
    # Read as plain SQL: Alembic's MigrationContext would log its set-up at INFO.
    if not inspect(connection).has_table(ALEMBIC_VERSION):
        return set()
    return set(connection.scalars(text("SELECT version_num FROM alembic_version")))


def _older_than_latest(current: set[str]) -> set[str]:
    """Revisions of current that the migrations know and that are not the latest.

    One the migrations do not know is newer than this code (a rolling upgrade): let it be.
    Without the migrations directory (an install without it) nothing can be compared.
    """
    directory = find_migrations_dir()
    if directory is None:
        return set()
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    # Loading the scripts sets up Alembic's plugins, which says so at INFO: not our line.
    alembic_log.setLevel(logging.WARNING)
    try:
        from alembic.script import ScriptDirectory

        scripts = ScriptDirectory(str(directory))
        known = {script.revision for script in scripts.walk_revisions()}
        latest = set(scripts.get_heads())
    finally:
        alembic_log.setLevel(level)
    return {revision for revision in current if revision in known} - latest


def _shown(url: URL) -> str:
    path = sqlite_file(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def _unusable(url: URL, error: DBAPIError) -> NoReturn:
    lines = str(error.orig).strip().splitlines()
    said = lines[0] if lines else type(error.orig).__name__
    _stop(f"cannot use the database at {_shown(url)} ({VARIABLE}): {said}")


def _bad_setting(problem: str, raw: str) -> NoReturn:
    # An unparsable URL may still hold a password: never echo what follows user:.
    shown = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", raw)
    print(f"pochta: bad setting: {VARIABLE}: {problem} (got {shown!r})", file=sys.stderr)
    raise SystemExit(2)


def _stop(message: str) -> NoReturn:
    raise SystemExit(f"pochta: {message}")
