"""The mailboxes a submitted email names, parsed once for the message builders."""

from __future__ import annotations

from dataclasses import dataclass

from app.messages.addresses import Mailbox, parse_mailbox
from app.messages.schemas import SubmitMessage


@dataclass(frozen=True, slots=True)
class Parties:
    """The mailboxes a message names; Bcc and the envelope sender count only for SMTPUTF8."""

    sender: Mailbox
    to: list[Mailbox]
    cc: list[Mailbox]
    reply_to: list[Mailbox]
    needs_smtputf8: bool

    @classmethod
    def of(cls, submit: SubmitMessage) -> Parties:
        sender = parse_mailbox(submit.from_)
        to = [parse_mailbox(value) for value in submit.to]
        cc = [parse_mailbox(value) for value in submit.cc]
        reply_to = [parse_mailbox(value) for value in submit.reply_to]
        bcc = [parse_mailbox(value) for value in submit.bcc]
        envelope = parse_mailbox(submit.envelope_from) if submit.envelope_from else sender
        everyone = [sender, envelope, *to, *cc, *reply_to, *bcc]
        needs_smtputf8 = not all(m.is_ascii for m in everyone)
        return cls(sender, to, cc, reply_to, needs_smtputf8)

    def message_id(self, local_id: str) -> str:
        """Derived from local_id, so retries reuse it."""
        return f"<{local_id.removeprefix('msg_')}@{_domain(self.sender)}>"


def _domain(mailbox: Mailbox) -> str:
    domain = mailbox.email.rpartition("@")[2]
    return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
