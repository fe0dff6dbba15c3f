"""Recording attempts in groups: the outcomes of several messages in one transaction.

Writing each outcome on its own cost several times the SMTP transaction it recorded
(a transaction, a row lock, three statements and the ORM's unit of work, per message).
A task keeps what the relay said in memory and writes a group at once: one statement
that checks and locks the messages still held, then one statement each for
recipients, attempts, messages and their events (message.deferred or the final status:
written with the change, so neither is ever seen without the other).

An outcome waits only briefly: the group is written as soon as the SMTP transactions
it covers span FLUSH_AFTER (from the start of the oldest). So what is sent but not yet
recorded is at most what the relay took within that time: with a slow relay, nothing
while the next message is sent; never more than a task's fifty. The group is always
written before the task returns or hands messages back. A worker killed meanwhile
loses those records, and those messages are sent again, with the same Message-ID, once
their lease runs out (docs/guarantees.md).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.events.messages import settled_event
from app.events.writer import add_events
from app.messages.models import Message
from app.messages.relay_results import AttemptResult
from app.messages.repository import recording as repository
from app.messages.settlement import RetryPolicy, Settlement, settle_attempt
from app.messages.states import MessageStatus
from app.suppressions.metrics import count_created
from app.suppressions.service import suppress_many
from worker.metrics import record_attempt

log = logging.getLogger("pochta.worker")

FLUSH_AFTER = timedelta(milliseconds=50)


def _database_away(error: DBAPIError) -> bool:
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


@dataclass(frozen=True, slots=True)
class _Outcome:
    message: Message
    result: AttemptResult
    settlement: Settlement
    held_until: datetime
    # Built as the attempt is added: the group's row locks are not held while it is.
    event: dict[str, Any] | None


class Recorder:
    """A task's outcomes not yet written, and the one transaction that writes them."""

    def __init__(self, session: Session, retry: RetryPolicy) -> None:
        self._session = session
        self._retry = retry
        self._pending: list[_Outcome] = []

    def add(self, message: Message, result: AttemptResult, held_until: datetime) -> None:
        """Keep an attempt to record; write the group once its transactions span FLUSH_AFTER."""
        settlement = settle_attempt(message=message, result=result, retry=self._retry)
        event = settled_event(message, settlement)
        self._pending.append(_Outcome(message, result, settlement, held_until, event))
        if utcnow() - self._pending[0].result.started_at >= FLUSH_AFTER:
            self.flush()

    def flush(self) -> None:
        """Write every pending outcome whose message is still ours; warn about the others."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        recorded = self._write(pending)
        for outcome in pending:
            if outcome.message.id in recorded:
                _report(outcome)
            else:
                log.warning(
                    "attempt not recorded: the lease was lost",
                    extra={"message_id": outcome.message.id},
                )

    def _write(self, pending: list[_Outcome]) -> set[str]:
        """One transaction; the ids written. The relay has answered, so losing this record
        would send the messages again: a database that went away is waited for while a
        lease lasts."""
        holds = [(outcome.message.id, outcome.held_until) for outcome in pending]
        last_lease = max(held_until for _, held_until in holds)
        delay = 0.1
        while True:
            try:
                with self._session.begin():
                    held = repository.lock_held(self._session, holds=holds)
                    written = [o for o in pending if o.message.id in held]
                    repository.add_attempts(self._session, settled=[o.settlement for o in written])
                    add_events(self._session, [o.event for o in written if o.event is not None])
                    suppressed = suppress_many(
                        self._session,
                        entries=[entry for o in written for entry in o.settlement.suppress],
                        now=utcnow(),
                    )
                count_created(s["reason"] for s in suppressed)
                return held
            except DBAPIError as error:
                if not _database_away(error) or utcnow() + timedelta(seconds=delay) > last_lease:
                    raise
                log.warning(
                    "database unavailable; recording %d attempts again shortly",
                    len(pending),
                    extra={
                        "message_ids": [i for i, _ in holds],
                        "error": type(error.orig).__name__,
                    },
                )
                time.sleep(delay)
                delay = min(delay * 2, 2.0)


def _report(outcome: _Outcome) -> None:
    """Count and log a recorded attempt; a message that ended with failures says why."""
    message, result, settlement = outcome.message, outcome.result, outcome.settlement
    record_attempt(message, result, settlement.status)
    reply = result.reply
    fields = {
        "message_id": message.id,
        "tenant": message.tenant,
        "attempt": settlement.attempt.number,
        "relay": result.relay,
        "stage": result.stage.value,
        "smtp_code": reply.code if reply else None,
        "enhanced_code": reply.enhanced if reply else result.enhanced,
        "smtp_reply": reply.text if reply else None,
        "error": result.error,
    }
    log.info("attempt %d: %s", settlement.attempt.number, settlement.status.value, extra=fields)
    if settlement.status in _ENDED_WITH_FAILURES:
        # One line an operator can alert on, with the relay's words: a 451 code alone
        # would not say that Pochta stopped trying.
        said = str(reply) if reply else result.error
        why = f"{settlement.gave_up}; last: {said}" if settlement.gave_up else said
        log.warning(
            "message %s: %s",
            settlement.status.value,
            why,
            extra=fields | {"status": settlement.status.value, "gave_up": settlement.gave_up},
        )


_ENDED_WITH_FAILURES = (MessageStatus.failed, MessageStatus.partially_sent)
