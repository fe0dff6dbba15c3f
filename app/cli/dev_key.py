"""The key `pochta dev` prints: the same one on every start while it is valid.

Keys are stored hashed, so the secret is kept in a file of its own (0600) beside the
dev database; a new key is made only when that file is missing or its key was revoked.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url

from app.cli.database import sqlite_file
from app.config import Settings

DEV_TENANT = "dev"
KEY_FILE_NAME = "dev-api-key"


def key_file(settings: Settings) -> Path:
    """Beside the SQLite database dev runs on; under var/ when it runs on a server."""
    database = sqlite_file(make_url(settings.database_url))
    folder = database.parent if database is not None else Path("var")
    return folder / KEY_FILE_NAME


def dev_key(path: Path) -> tuple[str, bool]:
    """The secret of a valid dev key, and whether it is the one path kept (else it is new)."""
    from app.db import session_scope
    from app.errors import Unauthorized
    from app.keys.service import authenticate, create_key

    kept = _read(path)
    with session_scope() as session:
        if kept is not None:
            try:
                authenticate(session, secret=kept)
            except Unauthorized:
                pass
            else:
                return kept, True
        _, secret = create_key(session, tenant=DEV_TENANT, name="pochta dev")
    _write(path, secret)
    return secret, False


def _read(path: Path) -> str | None:
    try:
        secret = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return secret or None


def _write(path: Path, secret: str) -> None:
    # Written whole under another name, then renamed: a dev stopped half-way leaves the
    # old file or the new one, never a truncated key. 0600 from the start: it is a secret.
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        os.fchmod(out.fileno(), 0o600)  # a leftover partial file may have had other bits
        out.write(secret + "\n")
    partial.replace(path)
