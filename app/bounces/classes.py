"""The bounce classes of SPEC §8: what kind of refusal a reply or a report is."""

from __future__ import annotations

from enum import StrEnum


class BounceClass(StrEnum):
    bad_mailbox = "bad_mailbox"
    bad_domain = "bad_domain"
    mailbox_full = "mailbox_full"
    message_too_large = "message_too_large"
    content = "content"
    policy = "policy"
    rate_limited = "rate_limited"
    relay_config = "relay_config"
    network = "network"
    other = "other"


# Only these say the address itself is wrong, so only these may suppress it.
SUPPRESSING = frozenset({BounceClass.bad_mailbox, BounceClass.bad_domain})
