"""Bounce classes (SPEC §8): a corpus of real-world replies, and the operator's rules file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from app.bounces.classes import BounceClass
from app.bounces.rules import classify
from app.bounces.rules_file import RulesFileError, read_rules
from app.cli.main import main
from app.messages.relay_results import Reply
from app.messages.states import Stage
from tests.conftest import Env

CORPUS = tomllib.loads((Path(__file__).parent / "bounce_replies.toml").read_text())["replies"]


def _reply(wire: str) -> Reply:
    """A reply as smtplib hands it over: the code, and the lines without it, joined."""
    lines = wire.split("\n")
    code = int(lines[0][:3])
    return Reply.parse(code, "\n".join(line[4:] for line in lines))


def _classify(entry: dict[str, Any]) -> BounceClass:
    stage = None if entry.get("report") else Stage(entry.get("stage", "rcpt"))
    if "reply" in entry:
        reply = _reply(entry["reply"])
        return classify(reply.code, reply.enhanced, reply.text, stage=stage)
    return classify(None, entry.get("enhanced"), None, stage=stage, error=entry.get("error"))


def test_the_corpus_is_large_and_covers_the_providers() -> None:
    assert len(CORPUS) >= 60
    providers = {entry["provider"] for entry in CORPUS}
    assert providers >= {"gmail", "microsoft365", "outlook", "yahoo", "icloud", "ses"}
    assert providers >= {"postfix", "exim", "exchange", "pochta"}
    assert {entry["class"] for entry in CORPUS} == set(BounceClass)


@pytest.mark.parametrize(
    "entry",
    CORPUS,
    ids=[f"{i}-{e['provider']}-{e['class']}" for i, e in enumerate(CORPUS)],
)
def test_each_reply_gets_its_class(entry: dict[str, Any]) -> None:
    assert _classify(entry) == BounceClass(entry["class"])


def test_an_operator_rule_reads_a_relay_the_built_in_rules_misread(
    sqlite_env: Env, tmp_path: Path
) -> None:
    odd = _reply("550 mailbox unavailable")
    assert classify(odd.code, odd.enhanced, odd.text, stage=Stage.rcpt) == BounceClass.bad_mailbox
    rules = tmp_path / "bounce-rules.toml"
    rules.write_text(
        '[[rules]]\nclass = "rate_limited"\ncode = 550\npattern = "^mailbox unavailable$"\n'
        # A rule of several conditions matches only when all of them do.
        '[[rules]]\nclass = "content"\ncode = 554\nenhanced = "5.7"\npattern = "virus"\n'
    )
    sqlite_env["POCHTA_BOUNCE_RULES_FILE"] = str(rules)
    assert classify(odd.code, odd.enhanced, odd.text, stage=Stage.rcpt) == BounceClass.rate_limited
    # Other replies still go by the built-in rules.
    assert classify(550, "5.1.1", "no such user", stage=Stage.rcpt) == BounceClass.bad_mailbox
    assert classify(554, "5.7.1", "virus found", stage=Stage.data) == BounceClass.content
    assert classify(550, "5.7.1", "virus found", stage=Stage.data) == BounceClass.policy
    assert classify(554, "5.6.1", "virus found", stage=Stage.data) == BounceClass.content


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('[[rules]]\nclass = "hard"\n', "rules[0].class: must be one of bad_mailbox"),
        ('[[rules]]\nclass = "policy"\ncode = "550"\n', "rules[0].code: must be a reply code"),
        ('[[rules]]\nclass = "policy"\nenhanced = "5.7.x"\n', "rules[0].enhanced: must be"),
        ('[[rules]]\nclass = "policy"\npattern = "(spam"\n', "rules[0].pattern: not a regular"),
        ('[[rules]]\nclass = "policy"\nregex = "spam"\n', "rules[0]: unknown key 'regex'"),
        ('[[rule]]\nclass = "policy"\n', "unknown key 'rule'"),
        ("[[rules]\n", "not valid TOML"),
    ],
)
def test_a_bad_rules_file_is_named_with_the_key(tmp_path: Path, text: str, complaint: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    with pytest.raises(RulesFileError) as raised:
        read_rules(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert complaint in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_bad_rules_file_stops_every_command_at_start(
    sqlite_env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text('[[rules]]\nclass = "hard"\n')
    sqlite_env["POCHTA_BOUNCE_RULES_FILE"] = str(path)
    for command in (["migrate"], ["keys", "list"], ["sink", "--port", "0"]):
        with pytest.raises(SystemExit) as stopped:
            main(command)
        assert stopped.value.code == 2
        lines = capsys.readouterr().err.splitlines()
        assert lines == [
            f"pochta: bad setting: POCHTA_BOUNCE_RULES_FILE: {path}: rules[0].class: must be "
            "one of bad_mailbox, bad_domain, mailbox_full, message_too_large, content, policy, "
            "rate_limited, relay_config, network, other (got 'hard')"
        ]
    sqlite_env["POCHTA_BOUNCE_RULES_FILE"] = str(tmp_path / "missing.toml")
    with pytest.raises(SystemExit):
        main(["migrate"])
    assert "missing.toml: cannot be read" in capsys.readouterr().err
