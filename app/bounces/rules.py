"""Which bounce class a refusal is (SPEC §8): one ordered table of rules, first match wins.

A refusal is what the relay answered (code, RFC 3463 enhanced code, text), or Pochta's
own finding when it answered nothing (an enhanced code such as 5.3.4 for its SIZE
refusal, or an error such as "timed out"), and the stage it happened at. The operator's
rules (POCHTA_BOUNCE_RULES_FILE, app/bounces/rules_file.py) are tried before these.

The order is the policy: what Pochta must not misread comes first (rate limits, and
refusals of our own session, which say nothing about the recipient), then the enhanced
code, subject and detail, then the code and the words of relays that send none.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from app.bounces.classes import BounceClass
from app.bounces.rule import Rule
from app.bounces.rules_file import RulesFileError, read_rules
from app.config import Settings, get_settings
from app.messages.states import Stage

B = BounceClass


def _words(expression: str) -> re.Pattern[str]:
    return re.compile(expression, re.IGNORECASE)


def _rule(
    bounce_class: BounceClass,
    *,
    codes: Sequence[int] | range | None = None,
    enhanced: str | None = None,
    pattern: str | None = None,
    stages: Sequence[Stage] | None = None,
    silent: bool = False,
) -> Rule:
    return Rule(
        bounce_class,
        codes=frozenset(codes) if codes is not None else None,
        enhanced=enhanced,
        pattern=_words(pattern) if pattern is not None else None,
        stages=frozenset(stages) if stages is not None else None,
        silent=silent,
    )


PERMANENT = range(500, 600)
TEMPORARY = range(400, 500)
# Before MAIL FROM a refusal is about our session with the relay, never the recipient.
SESSION_STAGES = (Stage.connect, Stage.ehlo, Stage.starttls, Stage.auth)
# A finding with no stage comes from a report (SPEC §9), not from our own session.
ANY_STAGE = tuple(Stage)

RATE_WORDS = (
    r"\brate\b|rate.?limit|throttl|too many|slow down|too (?:quickly|fast)|flood|busy|volume"
    r"|limit exceeded"
)
NETWORK_WORDS = (
    r"timed out|timeout|refused|reset|unreachable|closed|disconnect|broken pipe"
    r"|no reply after data|name or service not known|getaddrinfo|no route"
)
NO_MAILBOX = (
    r"no such (?:user|mailbox|recipient|address)|user(?:name)? unknown|unknown (?:user|recipient"
    r"|mailbox|address)|mailbox (?:not found|unavailable|does not exist|is disabled|disabled)"
    r"|(?:address|user|recipient|mailbox|account)[^.\n]{0,40}(?:does not|doesn't) exist"
    r"|invalid (?:recipient|mailbox|address)|recipient (?:address )?rejected"
    r"|not a valid (?:mailbox|recipient|user)|no mailbox|unrouteable address"
    r"|doesn't have an? \S+ account|account (?:has been |is )?disabled|address not found"
    r"|no longer (?:active|available|valid)|user not found|recipient not found"
)
NO_DOMAIN = (
    r"no such domain|domain (?:not found|does not exist|doesn't exist|is not configured)"
    r"|host (?:or domain name )?not found|unrouteable (?:mail )?domain|null mx|no mx"
    r"|does not accept mail|nxdomain|nonexistent domain|domain name not found|unknown domain"
)
FULL_WORDS = (
    r"over ?quota|quota exceeded|exceeded (?:its |the |their )?(?:storage|quota)"
    r"|mailbox (?:is )?full|out of storage|mail ?box size limit|mailbox quota"
)
LARGE_WORDS = (
    r"too (?:large|big)|size limit|exceed(?:s|ed)? (?:the |fixed |our )?(?:maximum|max|size)"
    r"|message size"
)
# Words that name a refusal of the sender or of the message, whatever else the text says.
POLICY_WORDS = (
    r"spam|\bblock|black ?list|block ?list|dmarc|\bspf\b|dkim|reputation|policy|grey ?list"
    r"|gray ?list|relay(?:ing)? (?:access )?denied|unable to relay|relay not permitted|abuse"
    r"|banned|prohibit|spoof|sender verify|sender address rejected|not authori[sz]ed"
    r"|unauthenticated"
)
CONTENT_WORDS = r"virus|malware|content|attachment|malformed|message (?:rejected|refused) as"
# Weaker words, read only after the mailbox and domain words had their say.
REFUSED_WORDS = r"rejected|refused|denied|not (?:accepted|permitted|allowed)"

BUILT_IN: tuple[Rule, ...] = (
    # Pochta's own findings, with no reply behind them: a session that broke without a
    # word is the network's doing, unless TLS or AUTH itself failed. (Its SIZE and
    # SMTPUTF8 refusals carry 5.3.4 and 5.6.7, read with the enhanced codes below.)
    _rule(B.network, silent=True, stages=ANY_STAGE, pattern=NETWORK_WORDS),
    _rule(B.relay_config, silent=True, stages=(Stage.starttls, Stage.auth)),
    _rule(B.network, silent=True, stages=ANY_STAGE),
    # "Slow down", however worded: shaping (SPEC §10) must see it before any policy rule.
    _rule(B.rate_limited, codes=(421, 454), pattern=RATE_WORDS),
    _rule(B.rate_limited, enhanced="4.7", pattern=RATE_WORDS),
    _rule(B.rate_limited, enhanced="x.2.1", pattern=RATE_WORDS),
    _rule(B.rate_limited, enhanced="x.7.28"),
    # A refused greeting, TLS or AUTH: the relay's settings or ours, not the recipient.
    _rule(B.relay_config, codes=(530, 534, 535, 538)),
    _rule(B.relay_config, stages=SESSION_STAGES),
    # The enhanced code: subject and detail (RFC 3463, and RFC 5248's registry).
    # Microsoft writes 5.1.10 for an unknown recipient, and 5.4.1 when its directory
    # blocks one; RFC 7505 means a null MX by 5.1.10.
    _rule(B.bad_mailbox, enhanced="x.1.10", pattern=r"recipient ?not ?found"),
    _rule(B.bad_mailbox, enhanced="5.4.1", pattern=r"recipient address rejected"),
    _rule(B.bad_mailbox, enhanced="x.1.1"),
    _rule(B.bad_mailbox, enhanced="x.1.0"),
    _rule(B.bad_domain, enhanced="x.1.2"),
    _rule(B.bad_mailbox, enhanced="x.1.3"),
    _rule(B.bad_mailbox, enhanced="x.1.6"),
    _rule(B.bad_domain, enhanced="x.1.10"),
    _rule(B.bad_mailbox, enhanced="5.2.1"),
    _rule(B.mailbox_full, enhanced="x.2.2"),
    _rule(B.message_too_large, enhanced="x.2.3"),
    _rule(B.message_too_large, enhanced="x.3.4"),
    _rule(B.bad_domain, enhanced="x.4.4"),
    _rule(B.network, enhanced="x.4.1"),
    _rule(B.network, enhanced="x.4.2"),
    _rule(B.rate_limited, enhanced="x.4.5"),
    _rule(B.other, enhanced="x.5.3"),  # too many recipients: the delivery splits them
    _rule(B.content, enhanced="x.6"),
    _rule(B.bad_mailbox, enhanced="x.7.17"),
    _rule(B.bad_domain, enhanced="x.7.18"),
    _rule(B.policy, enhanced="x.7"),
    # A full mailbox or a message too large is often worded under a vague code.
    _rule(B.mailbox_full, pattern=FULL_WORDS),
    _rule(B.message_too_large, codes=(552, 554), pattern=LARGE_WORDS),
    # The code and the words, for relays that give no enhanced code (or a vague one).
    _rule(B.rate_limited, codes=TEMPORARY, pattern=RATE_WORDS),
    _rule(B.policy, pattern=POLICY_WORDS),
    _rule(B.bad_domain, codes=PERMANENT, pattern=NO_DOMAIN),
    _rule(B.bad_mailbox, codes=PERMANENT, pattern=NO_MAILBOX),
    _rule(B.content, codes=PERMANENT, pattern=CONTENT_WORDS),
    _rule(B.policy, codes=PERMANENT, pattern=REFUSED_WORDS),
    _rule(B.network, pattern=r"no reply after data|connection (?:lost|dropped|timed out)"),
)


def classify(
    code: int | None,
    enhanced: str | None,
    text: str | None,
    *,
    stage: Stage | None = None,
    error: str | None = None,
) -> BounceClass:
    """The bounce class of a refusal: the operator's rules first, then BUILT_IN."""
    words = "\n".join(part for part in (text, error) if part)
    for rule in (*operator_rules(), *BUILT_IN):
        if rule.matches(code, enhanced, words, stage):
            return rule.bounce_class
    return BounceClass.other


def operator_rules() -> tuple[Rule, ...]:
    """The rules of POCHTA_BOUNCE_RULES_FILE, read once per process and file."""
    path = get_settings().bounce_rules_file
    return _load(path) if path is not None else ()


@lru_cache(maxsize=4)
def _load(path: Path) -> tuple[Rule, ...]:
    return read_rules(path)


def check_rules_file(settings: Settings) -> None:
    """At a command's start: a bad rules file ends the process with one line naming it."""
    if settings.bounce_rules_file is None:
        return
    try:
        _load(settings.bounce_rules_file)
    except RulesFileError as error:
        print(f"pochta: bad setting: POCHTA_BOUNCE_RULES_FILE: {error}", file=sys.stderr)
        raise SystemExit(2) from None
