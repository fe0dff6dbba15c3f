"""The migrations' head builds exactly the schema the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app import db
from app.cli.migrate import migrations_dir
from app.models import Base
from tests.conftest import Env


def test_the_database_is_at_the_one_head(env: Env) -> None:
    heads = ScriptDirectory(str(migrations_dir())).get_heads()
    with db.get_engine().connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    assert len(heads) == 1, f"the migrations branch: {heads}"
    assert current == tuple(heads)


def test_the_migrated_schema_matches_the_models(env: Env) -> None:
    # The options migrations/env.py gives autogenerate, so a diff here is one a new
    # revision would have to carry.
    with db.get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "a model changed without a migration (alembic revision ...)"
