"""`pochta keys create | list | revoke`."""

from __future__ import annotations

import argparse

from app.cli.database import database_errors
from app.config import Settings

# KeyScope's values (app/keys/models.py), spelled here so the parser imports no models.
SCOPES = ("full", "send", "read")


def cmd_keys_create(args: argparse.Namespace, settings: Settings) -> None:
    from app.db import session_scope
    from app.keys.models import KeyScope
    from app.keys.service import BadLabel, create_key

    scope = KeyScope(args.scope)
    try:
        with database_errors(settings), session_scope() as session:
            key, secret = create_key(session, tenant=args.tenant, name=args.name, scope=scope)
            key_id = key.id
    except BadLabel as error:
        raise SystemExit(f"pochta: {error}") from None
    print(f"created {key_id} for tenant {args.tenant}, scope {scope}; the key is shown once:")
    print(secret)


def cmd_keys_list(_: argparse.Namespace, settings: Settings) -> None:
    from app.db import session_scope
    from app.keys.service import list_keys

    with database_errors(settings), session_scope() as session:
        for key in list_keys(session):
            state = f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if key.revoked_at else "active"
            created = f"{key.created_at:%Y-%m-%dT%H:%M:%SZ}"
            print(f"{key.id}\t{key.tenant}\t{key.name}\t{key.scope}\t{created}\t{state}")


def cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> None:
    from app.db import session_scope
    from app.errors import NotFound
    from app.keys.service import revoke_key

    try:
        with database_errors(settings), session_scope() as session:
            revoked_now = revoke_key(session, key_id=args.id)
    except NotFound as error:
        raise SystemExit(f"pochta: {error}") from None
    # Exit 0 either way: the key is revoked, which is what was asked (README).
    print(f"revoked {args.id}" if revoked_now else f"{args.id} was already revoked")
