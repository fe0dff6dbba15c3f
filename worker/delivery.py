"""One delivery attempt of one message: SMTP transactions in, per-recipient outcomes out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from app.messages.models import Message
from app.messages.relay_results import AttemptResult, RecipientResult, Reply
from app.messages.states import OPEN_RECIPIENT, RecipientStatus, Stage
from worker.smtp.connection import RelayConnection
from worker.smtp.errors import NoReplyAfterData, RelayError, StaleConnection
from worker.smtp.pool import RelayPool

Clock = Callable[[], datetime]

log = logging.getLogger("pochta.smtp")


def _status_of(reply: Reply) -> RecipientStatus:
    if reply.is_positive:
        return RecipientStatus.sent
    return RecipientStatus.failed if reply.is_permanent else RecipientStatus.deferred


def _too_many_recipients(reply: Reply) -> bool:
    # RFC 5321 §4.5.3.1.10: 452, and 552 from older servers, to RCPT mean "no more in
    # this transaction", not a verdict on the recipient.
    return reply.code in (452, 552)


class AttemptInProgress:
    """One attempt while its transactions run: who is settled so far, and how."""

    def __init__(self, message: Message, relay: str, clock: Clock) -> None:
        self.message = message
        self.clock = clock
        self.result = AttemptResult(started_at=clock(), relay=relay)
        self.open = [r.email for r in message.recipients if r.status in OPEN_RECIPIENT]

    def settle(self, emails: list[str], outcome: RecipientResult) -> None:
        for email in emails:
            self.result.recipients[email] = outcome

    def unsettled(self) -> list[str]:
        return [e for e in self.open if e not in self.result.recipients]

    def end(self, stage: Stage, reply: Reply | None = None) -> AttemptResult:
        self.result.stage = stage
        self.result.reply = reply
        self.result.finished_at = self.clock()
        return self.result

    def broke(self, error: RelayError) -> AttemptResult:
        """The session failed: what is still unsettled gets that failure."""
        status = RecipientStatus.failed if error.is_permanent else RecipientStatus.deferred
        self.settle(self.unsettled(), RecipientResult(status, error.reply, note=error.error))
        self.result.error = error.error
        return self.end(error.stage, error.reply)

    def refuse_all(self, enhanced: str, note: str) -> AttemptResult:
        """Fail every open recipient on Pochta's own finding, sending nothing."""
        self.settle(
            self.open, RecipientResult(RecipientStatus.failed, enhanced=enhanced, note=note)
        )
        self.result.enhanced = enhanced
        self.result.error = note
        return self.end(Stage.mail)


def deliver(
    pool: RelayPool, message: Message, clock: Clock, *, relay: str | None = None
) -> AttemptResult:
    """Try every open recipient of message once, over the pool's connection; the attempt
    names `relay` (default: the pool's host:port)."""
    attempt = AttemptInProgress(message, relay or pool.settings.relay, clock)
    try:
        try:
            return _attempt_on(_checked_connection(pool, message), attempt)
        except StaleConnection as stale:
            # The relay closed the pooled connection before our first command reached it
            # (Postfix treats a cached connection this way): no transaction began, so the
            # same attempt goes on over a fresh one, once. A fresh one failing is a deferral.
            log.info(
                "the relay had closed the pooled connection; reopening (%s)",
                stale,
                extra={"relay": pool.settings.relay, "message_id": message.id},
            )
            return _attempt_on(pool.acquire(), attempt)
    except RelayError as error:
        return attempt.broke(error)


def _checked_connection(pool: RelayPool, message: Message) -> RelayConnection:
    """The pool's connection; proven alive first if what it announced would refuse message."""
    connection = pool.acquire()
    if connection.proven_alive or _refusal(connection, message) is None:
        return connection
    # A permanent refusal must rest on a live session's EHLO, not on a connection the
    # relay may have closed before announcing more: RSET proves it, or a new one answers.
    if connection.reset():
        return connection
    return pool.acquire()


def _refusal(connection: RelayConnection, message: Message) -> tuple[str, str] | None:
    return connection.capabilities.refusal(message.size, message.needs_smtputf8)


def _attempt_on(connection: RelayConnection, attempt: AttemptInProgress) -> AttemptResult:
    refusal = _refusal(connection, attempt.message)
    if refusal is not None:
        return attempt.refuse_all(*refusal)
    return _transactions(connection, attempt)


def _mail_options(connection: RelayConnection, message: Message) -> list[str]:
    caps = connection.capabilities
    options = [f"SIZE={message.size}"] if caps.size is not None else []
    if message.needs_smtputf8:
        options += ["SMTPUTF8", "BODY=8BITMIME"] if caps.eightbitmime else ["SMTPUTF8"]
    return options


def _transactions(connection: RelayConnection, attempt: AttemptInProgress) -> AttemptResult:
    """As many transactions as the relay's recipient limits need, one after another."""
    message = attempt.message
    options = _mail_options(connection, message)
    limit = connection.capabilities.rcpt_limit or len(attempt.open)
    remaining = list(attempt.open)
    last: Reply | None = None
    # The attempt records the latest refusal when there was one: that is what a user
    # looking at a deferred or mixed attempt needs to see, not the 250 of the others.
    refusal: tuple[Stage, Reply] | None = None
    while remaining:
        batch, remaining = remaining[:limit], remaining[limit:]
        mail = connection.command(Stage.mail, "mail", message.envelope_from, options)
        if not mail.is_positive:
            attempt.settle(batch + remaining, RecipientResult(_status_of(mail), mail))
            return attempt.end(Stage.mail, mail)
        accepted: list[str] = []
        for index, email in enumerate(batch):
            reply = connection.command(Stage.rcpt, "rcpt", email, [])
            if reply.is_positive:
                accepted.append(email)
            elif _too_many_recipients(reply) and accepted:
                remaining = batch[index:] + remaining
                break
            else:
                attempt.settle([email], RecipientResult(_status_of(reply), reply))
                refusal = (Stage.rcpt, reply)
                if reply.code == 421:
                    attempt.settle(attempt.unsettled(), RecipientResult(_status_of(reply), reply))
                    return attempt.end(Stage.rcpt, reply)
        if accepted:
            try:
                last = connection.data(message.raw)
            except NoReplyAfterData as error:
                note = RecipientResult(RecipientStatus.deferred, note=error.error)
                attempt.settle(accepted, note)
                raise
            attempt.settle(accepted, RecipientResult(_status_of(last), last))
            if not last.is_positive:
                refusal = (Stage.data, last)
            if last.code == 421:
                attempt.settle(attempt.unsettled(), RecipientResult(_status_of(last), last))
                return attempt.end(Stage.data, last)
        if remaining and not connection.reset():
            raise RelayError(
                Stage.mail, error="the relay dropped the connection between transactions"
            )
    if refusal is not None:
        return attempt.end(*refusal)
    return attempt.end(Stage.done, last)
