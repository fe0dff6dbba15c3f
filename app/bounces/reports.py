"""Reading bounce and complaint reports (SPEC §9) with the standard `email` package.

RFC 3464 delivery reports (multipart/report; report-type=delivery-status) and RFC 5965
feedback reports (report-type=feedback-report) become plain data; anything else is
`other`. Nothing here touches the database: app/bounces/apply.py does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import message_from_bytes, message_from_string, policy
from email.message import Message
from email.utils import getaddresses
from enum import StrEnum
from typing import Any


class ReportKind(StrEnum):
    delivery_status = "delivery_status"
    feedback_report = "feedback_report"
    other = "other"


@dataclass(frozen=True)
class FailedRecipient:
    """One per-recipient block of a delivery report whose Action is `failed`."""

    email: str
    original_email: str  # Original-Recipient, "" if absent: what was sent, before aliases
    status: str | None  # RFC 3463 code, e.g. "5.1.1"
    smtp_code: int | None
    smtp_reply: str | None  # the diagnostic after its code and enhanced code
    diagnostic_code: str | None  # as written: "smtp; 550 5.1.1 ..."
    remote_mta: str | None


@dataclass(frozen=True)
class Report:
    kind: ReportKind
    # Delivery reports: the recipients that failed. Complaints: who complained, if said.
    failed: tuple[FailedRecipient, ...] = ()
    complainants: tuple[str, ...] = ()
    # From the returned message (or the complaint's Original-Mail-From): what links it.
    original_message_id: str | None = None
    original_senders: tuple[str, ...] = ()
    # The fields worth keeping on the event's `report`.
    details: dict[str, Any] = field(default_factory=dict)


_ENHANCED = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_SMTP_DIAGNOSTIC = re.compile(r"(\d{3})(?:[ -]+([245]\.\d{1,3}\.\d{1,3}))?\s*(.*)", re.DOTALL)


def read_report(raw: bytes) -> Report:
    """What a message received by `pochta bounces` says; kind `other` if it is no report."""
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return Report(kind=ReportKind.other)
    report_type = str(message.get_param("report-type", "", header="content-type")).lower()
    parts = [part for part in message.get_payload() if isinstance(part, Message)]
    original = _original_headers(parts)
    if report_type == "delivery-status":
        return _delivery_report(parts, original)
    if report_type == "feedback-report":
        return _feedback_report(parts, original)
    return Report(kind=ReportKind.other)


def _delivery_report(parts: list[Message], original: Message | None) -> Report:
    status_part = next(
        (p for p in parts if p.get_content_type() == "message/delivery-status"), None
    )
    if status_part is None:
        return Report(kind=ReportKind.other)
    blocks = _blocks(status_part)
    if not blocks:
        return Report(kind=ReportKind.other)
    per_message, per_recipient = blocks[0], blocks[1:]
    failed = tuple(
        _failed_recipient(block)
        for block in per_recipient
        if _field(block, "Action").lower() == "failed" and _address(block, "Final-Recipient")
    )
    details = {
        "kind": ReportKind.delivery_status.value,
        "reporting_mta": _field(per_message, "Reporting-MTA") or None,
        "arrival_date": _field(per_message, "Arrival-Date") or None,
    }
    return Report(
        kind=ReportKind.delivery_status,
        failed=failed,
        original_message_id=_message_id(original),
        original_senders=_senders(original, per_message),
        details=details,
    )


def _feedback_report(parts: list[Message], original: Message | None) -> Report:
    feedback = next((p for p in parts if p.get_content_type() == "message/feedback-report"), None)
    if feedback is None:
        return Report(kind=ReportKind.other)
    blocks = _blocks(feedback)
    fields = blocks[0] if blocks else Message()
    complainants = tuple(
        email for _, email in getaddresses(fields.get_all("Original-Rcpt-To", [])) if email
    )
    if not complainants and original is not None:
        # Many feedback loops leave Original-Rcpt-To out; the returned headers still say.
        complainants = tuple(
            email
            for _, email in getaddresses(original.get_all("To", []) + original.get_all("Cc", []))
            if email
        )
    senders = [email for _, email in getaddresses(fields.get_all("Original-Mail-From", []))]
    details = {
        "kind": ReportKind.feedback_report.value,
        "feedback_type": _field(fields, "Feedback-Type").lower() or None,
        "user_agent": _field(fields, "User-Agent") or None,
        "arrival_date": _field(fields, "Arrival-Date") or _field(fields, "Received-Date") or None,
        "source_ip": _field(fields, "Source-IP") or None,
    }
    return Report(
        kind=ReportKind.feedback_report,
        complainants=complainants,
        original_message_id=_message_id(original),
        original_senders=tuple(e for e in senders if e) + _senders(original, None),
        details=details,
    )


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # The parser reads message/* bodies as messages: one block per blank-line group
        # for delivery-status, the whole body as one message's headers otherwise.
        return [block for block in payload if isinstance(block, Message)]
    text = payload if isinstance(payload, str) else ""
    return [message_from_string(chunk) for chunk in re.split(r"\r?\n\s*\r?\n", text) if chunk]


def _original_headers(parts: list[Message]) -> Message | None:
    """The returned message's headers: a message/rfc822 part or a text/rfc822-headers one."""
    for part in parts[1:]:
        kind = part.get_content_type()
        if kind == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if kind == "text/rfc822-headers":
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                return message_from_bytes(body, policy=policy.compat32)
    return None


def _failed_recipient(block: Message) -> FailedRecipient:
    status = _field(block, "Status")
    found_status = _ENHANCED.search(status)
    diagnostic = _field(block, "Diagnostic-Code")
    kind, _, text = diagnostic.partition(";")
    smtp_code: int | None = None
    reply = text.strip() or None
    enhanced = found_status.group(0) if found_status else None
    if kind.strip().lower() == "smtp" and reply is not None:
        parsed = _SMTP_DIAGNOSTIC.fullmatch(reply)
        if parsed is not None:
            smtp_code = int(parsed.group(1))
            enhanced = enhanced or parsed.group(2)
            reply = parsed.group(3).strip() or None
            if reply is not None and parsed.group(2):
                # A multi-line reply comes joined, each line led by its codes
                # ("550-5.1.1 ..."): lines joined by \n, as the worker records them.
                lead = rf"\s+{smtp_code}[ -]{re.escape(parsed.group(2))}\s+"
                reply = re.sub(lead, "\n", reply)
    remote = _field(block, "Remote-MTA").partition(";")[2].strip()
    return FailedRecipient(
        email=_address(block, "Final-Recipient"),
        original_email=_address(block, "Original-Recipient"),
        status=enhanced,
        smtp_code=smtp_code,
        smtp_reply=reply,
        diagnostic_code=diagnostic or None,
        remote_mta=remote or None,
    )


def _field(block: Message, name: str) -> str:
    """A field's value with its folding undone ("" if absent)."""
    value = block.get(name)
    if value is None:
        return ""
    return re.sub(r"\s*\r?\n\s+", " ", str(value)).strip()


def _address(block: Message, name: str) -> str:
    """The address of an `rfc822; addr` field, without angle brackets."""
    value = _field(block, name)
    kind, _, address = value.partition(";")
    if not address:
        address, kind = kind, "rfc822"
    if kind.strip().lower() not in ("rfc822", "utf-8"):
        return ""
    return address.strip().strip("<>").strip()


def _message_id(original: Message | None) -> str | None:
    if original is None:
        return None
    value = _field(original, "Message-ID")
    return value or None


def _senders(original: Message | None, per_message: Message | None) -> tuple[str, ...]:
    """The original envelope sender, where a report repeats it: a VERP address to check."""
    found: list[str] = []
    if per_message is not None:
        # Postfix names the sender it bounced for in its own per-message field.
        found.append(_address(per_message, "X-Postfix-Sender"))
    if original is not None:
        found.extend(email for _, email in getaddresses(original.get_all("Return-Path", [])))
    return tuple(email for email in found if email)
