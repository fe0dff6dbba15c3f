"""`pochta keys create` refuses labels that would break `keys list`; revoking is idempotent."""

from __future__ import annotations

import pytest

from tests.conftest import Env
from tests.system.test_cli import pochta


@pytest.mark.parametrize(
    ("tenant", "name", "said"),
    [
        ("", "web", "--tenant must not be empty"),
        ("  ", "web", "--tenant must not be empty"),
        ("acme", "", "--name must not be empty"),
        ("ac\nme", "web", "--tenant must not contain control characters"),
        ("acme", "we\tb", "--name must not contain control characters"),
        ("acme", "web\x1b[2J", "--name must not contain control characters"),
        ("a" * 65, "web", "--tenant must be at most 64"),
    ],
)
def test_keys_create_refuses_a_bad_tenant_or_name_in_one_line(
    sqlite_env: Env, tenant: str, name: str, said: str
) -> None:
    result = pochta(sqlite_env, "keys", "create", "--tenant", tenant, "--name", name)
    assert result.returncode != 0
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert said in line
    assert pochta(sqlite_env, "keys", "list").stdout == "", "no key was created"


def test_revoking_twice_says_already_revoked(sqlite_env: Env) -> None:
    created = pochta(sqlite_env, "keys", "create", "--tenant", "acme", "--name", "web")
    key_id = created.stdout.split()[1]
    first = pochta(sqlite_env, "keys", "revoke", key_id)
    assert (first.returncode, first.stdout.strip()) == (0, f"revoked {key_id}")
    again = pochta(sqlite_env, "keys", "revoke", key_id)
    # The key is revoked, which is what was asked: exit 0, and say it was so before.
    assert (again.returncode, again.stdout.strip()) == (0, f"{key_id} was already revoked")


def test_a_key_s_scope_is_chosen_at_creation_and_listed(sqlite_env: Env) -> None:
    for name, scope in (("sender", "send"), ("reader", "read")):
        created = pochta(
            sqlite_env, "keys", "create", "--tenant", "acme", "--name", name, "--scope", scope
        )
        assert created.returncode == 0, created.stderr
        assert f"scope {scope}" in created.stdout
    pochta(sqlite_env, "keys", "create", "--tenant", "acme", "--name", "default")
    listed = [line.split("\t") for line in pochta(sqlite_env, "keys", "list").stdout.splitlines()]
    assert [(fields[2], fields[3]) for fields in listed] == [
        ("sender", "send"),
        ("reader", "read"),
        ("default", "full"),
    ]


def test_an_unknown_scope_is_refused_naming_the_choices(sqlite_env: Env) -> None:
    result = pochta(
        sqlite_env, "keys", "create", "--tenant", "acme", "--name", "x", "--scope", "admin"
    )
    assert result.returncode == 2
    assert "--scope" in result.stderr
    assert "full" in result.stderr
    assert pochta(sqlite_env, "keys", "list").stdout == "", "no key was created"
