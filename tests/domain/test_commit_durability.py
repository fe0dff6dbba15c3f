"""Which units of work wait for the disk on PostgreSQL: email's always; the webhook
bookkeeping, which a crash only makes Pochta do again, not (docs/webhooks.md)."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import db
from tests.conftest import Env


@pytest.fixture
def backend() -> str:
    return "postgres"  # SQLite has no asynchronous commit


def flush_setting(scope: AbstractContextManager[Session]) -> str:
    with scope as session:
        return str(session.execute(text("SHOW synchronous_commit")).scalar_one())


def test_webhook_bookkeeping_alone_commits_without_waiting_for_the_disk(env: Env) -> None:
    assert flush_setting(db.session_scope()) == "on"
    assert flush_setting(db.repeatable_scope()) == "off"
    # SET LOCAL: the pooled connection is durable again for the next unit of work.
    assert flush_setting(db.session_scope()) == "on"
