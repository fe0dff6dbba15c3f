"""What a report read by `pochta bounces` changes (SPEC §9), all in the caller's transaction.

A delivery report turns each failed recipient the relay had taken (`sent`) into
`bounced`, with the report's codes and a bounce class, emits `recipient.bounced` and
suppresses the address where §8 says so. A complaint emits `recipient.complained` and
adds a `complaint` suppression; the recipient's status stays. The message is found by a
VERP token that verifies, else by the returned Message-ID; a token that does not verify
is forged, and nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.bounces import repository, verp
from app.bounces.classes import SUPPRESSING
from app.bounces.reports import FailedRecipient, Report, ReportKind
from app.bounces.rules import classify
from app.config import Settings
from app.events.payloads import recipient_data
from app.events.types import EventType
from app.events.writer import add_events, event_row
from app.messages.models import Message, Recipient
from app.messages.serializers import message_out
from app.messages.states import RecipientStatus
from app.suppressions.models import SuppressionReason
from app.suppressions.service import NewSuppression, suppress_many

# Pochta's Message-IDs are <random part of the message id@sender's domain> (parties.py).
_OUR_MESSAGE_ID = re.compile(r"<([0-9a-z]{26})@[^>]+>")


@dataclass(frozen=True)
class Applied:
    """What one report did: whether it named a message of ours, and how many recipients."""

    kind: ReportKind
    matched: bool
    changed: int = 0
    # The reasons of the suppressions added, to count once committed.
    suppressed: tuple[str, ...] = ()
    message_id: str | None = None


class ReportTooEarly(Exception):
    """A report names a recipient whose attempt is not recorded yet (a relay that bounces
    within the moment between its 250 and our commit): the reporting MTA should try it
    again shortly, when the recipient is `sent` and the report can apply."""


# The attempt that got the relay's 250 may still be being recorded.
_NOT_RECORDED_YET = {RecipientStatus.pending, RecipientStatus.deferred}


def apply_report(
    session: Session,
    *,
    settings: Settings,
    report: Report,
    envelope_recipients: Sequence[str],
    now: datetime,
) -> Applied:
    """Apply a report to the message it names; unmatched reports change nothing."""
    if report.kind is ReportKind.other:
        return Applied(report.kind, matched=False)
    message_id, by_token = _named_message(settings, report, envelope_recipients)
    message = (
        repository.message_for_report(session, message_id=message_id)
        if message_id is not None
        else None
    )
    if message is None or (
        # Named by the Message-ID alone: it must be the one this message was sent with.
        not by_token and (report.original_message_id or "").lower() != message.message_id.lower()
    ):
        return Applied(report.kind, matched=False)
    if report.kind is ReportKind.delivery_status:
        changed, added = _apply_bounces(session, message, report, now)
        matched = bool(_reported(message, report))
    else:
        changed, added = _apply_complaint(session, message, report, now)
        matched = changed > 0
    reasons = tuple(str(entry["reason"]) for entry in added)
    return Applied(
        report.kind, matched=matched, changed=changed, suppressed=reasons, message_id=message.id
    )


def _named_message(
    settings: Settings, report: Report, envelope_recipients: Sequence[str]
) -> tuple[str | None, bool]:
    """The message id a verified token names (and True), else the returned Message-ID's
    (and False); None if a token is forged or nothing names a message of ours."""
    forged = False
    for address in (*envelope_recipients, *report.original_senders):
        if not verp.has_token(address):
            continue
        named = verp.read_address(settings, address)
        if named is not None:
            return named, True
        forged = True
    if forged or report.original_message_id is None:
        return None, False
    found = _OUR_MESSAGE_ID.fullmatch(report.original_message_id.strip().lower())
    return (f"msg_{found.group(1)}" if found else None), False


def _by_email(message: Message) -> dict[str, Recipient]:
    return {recipient.email.lower(): recipient for recipient in message.recipients}


def _reported(message: Message, report: Report) -> list[tuple[Recipient, FailedRecipient]]:
    recipients = _by_email(message)
    found = []
    for failed in report.failed:
        # Final-Recipient, or the address as sent when an alias at the far end rewrote it.
        for email in (failed.email, failed.original_email):
            if email.lower() in recipients:
                found.append((recipients[email.lower()], failed))
                break
    return found


def _apply_bounces(
    session: Session, message: Message, report: Report, now: datetime
) -> tuple[int, list[dict[str, Any]]]:
    reported = _reported(message, report)
    if any(recipient.status in _NOT_RECORDED_YET for recipient, _ in reported):
        raise ReportTooEarly(message.id)
    bounced: list[tuple[Recipient, FailedRecipient]] = []
    for recipient, failed in reported:
        # Only a recipient the relay took can bounce later; a repeated report is a no-op.
        if recipient.status is not RecipientStatus.sent:
            continue
        recipient.status = RecipientStatus.bounced
        recipient.smtp_code = failed.smtp_code
        recipient.enhanced_code = failed.status
        recipient.smtp_reply = failed.smtp_reply
        recipient.bounce_class = classify(failed.smtp_code, failed.status, failed.smtp_reply)
        bounced.append((recipient, failed))
    if not bounced:
        return 0, []
    message.updated_at = now
    session.flush()
    rows = [
        _event(EventType.recipient_bounced, message, recipient, report, failed, now)
        for recipient, failed in bounced
    ]
    add_events(session, rows)
    added = suppress_many(
        session,
        entries=[
            _suppression(message, recipient, SuppressionReason.hard_bounce)
            for recipient, _ in bounced
            if recipient.bounce_class in SUPPRESSING
        ],
        now=now,
    )
    return len(bounced), added


def _apply_complaint(
    session: Session, message: Message, report: Report, now: datetime
) -> tuple[int, list[dict[str, Any]]]:
    recipients = _by_email(message)
    named = [
        recipients[email.lower()] for email in report.complainants if email.lower() in recipients
    ]
    if not named and len(message.recipients) == 1:
        # Feedback loops often redact the complainant; a message to one address names it.
        named = list(message.recipients)
    if not named:
        return 0, []
    rows = [_event(EventType.recipient_complained, message, r, report, None, now) for r in named]
    add_events(session, rows)
    entries = [_suppression(message, r, SuppressionReason.complaint) for r in named]
    return len(named), suppress_many(session, entries=entries, now=now)


def _suppression(
    message: Message, recipient: Recipient, reason: SuppressionReason
) -> NewSuppression:
    # A complaint is no refusal: its source is the message alone.
    bounce = reason is SuppressionReason.hard_bounce
    source = {
        "message_id": message.id,
        "smtp_code": recipient.smtp_code if bounce else None,
        "enhanced_code": recipient.enhanced_code if bounce else None,
        "smtp_reply": recipient.smtp_reply if bounce else None,
        "bounce_class": recipient.bounce_class if bounce else None,
    }
    return NewSuppression(
        tenant=message.tenant, email=recipient.email, reason=reason, source=source
    )


def _event(
    type: EventType,
    message: Message,
    recipient: Recipient,
    report: Report,
    failed: FailedRecipient | None,
    now: datetime,
) -> dict[str, Any]:
    snapshot = message_out(message)
    shown = next(r for r in snapshot.recipients if r.email == recipient.email)
    details = dict(report.details)
    if failed is not None:
        details |= {
            "status": failed.status,
            "diagnostic_code": failed.diagnostic_code,
            "remote_mta": failed.remote_mta,
        }
    return event_row(
        type=type,
        tenant=message.tenant,
        message_id=message.id,
        data=recipient_data(snapshot, shown, details),
        at=now,
    )
