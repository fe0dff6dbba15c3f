"""A database made by an older release upgrades in place, its messages kept."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app.cli.migrate import migrations_dir
from app.runtime import stop
from harness.relay import ScriptedRelay
from tests.support.flow import fetch, run_until_final, submit


def _alembic() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def test_recipients_stored_before_the_error_column_read_and_deliver_after_it(
    relay: ScriptedRelay,
) -> None:
    message_id = submit(to=["billy@example.org"])
    stop()
    command.downgrade(_alembic(), "0001")
    command.upgrade(_alembic(), "head")
    (before,) = fetch(message_id).recipients
    assert (before.email, before.status, before.error) == ("billy@example.org", "pending", None)
    assert run_until_final(message_id).status == "sent"
