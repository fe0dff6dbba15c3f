"""Building the RFC 5322 bytes of a submitted email, once, with the `email` package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from app.messages.addresses import Mailbox, parse_mailbox
from app.messages.schemas import SubmitMessage

# 7-bit bodies (quoted-printable or base64) and RFC 2047 headers pass every relay, with
# or without 8BITMIME, so the stored bytes are exactly what any relay receives.
SEVEN_BIT = policy.SMTP.clone(cte_type="7bit")
# A non-ASCII address cannot be an encoded-word (RFC 2047 §5): such a message needs
# UTF-8 headers and a relay that offers SMTPUTF8 (RFC 6532).
UTF8_HEADERS = policy.SMTPUTF8.clone(cte_type="7bit")


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    raw: bytes
    message_id: str
    needs_smtputf8: bool


class HeaderError(ValueError):
    """A custom header the email package cannot write."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.name = name


def _domain(mailbox: Mailbox) -> str:
    domain = mailbox.email.rpartition("@")[2]
    return domain.encode("idna").decode("ascii") if not domain.isascii() else domain


def build_message(submit: SubmitMessage, *, local_id: str, now: datetime) -> BuiltMessage:
    """The bytes to send, with a Message-ID derived from local_id so retries reuse it."""
    sender = parse_mailbox(submit.from_)
    to = [parse_mailbox(value) for value in submit.to]
    cc = [parse_mailbox(value) for value in submit.cc]
    reply_to = [parse_mailbox(value) for value in submit.reply_to]
    bcc = [parse_mailbox(value) for value in submit.bcc]
    envelope = parse_mailbox(submit.envelope_from) if submit.envelope_from else sender
    needs_smtputf8 = not all(m.is_ascii for m in [sender, envelope, *to, *cc, *reply_to, *bcc])

    message = EmailMessage(policy=UTF8_HEADERS if needs_smtputf8 else SEVEN_BIT)
    message_id = f"<{local_id.removeprefix('msg_')}@{_domain(sender)}>"
    message["From"] = sender.header_address()
    if to:
        message["To"] = [m.header_address() for m in to]
    if cc:
        message["Cc"] = [m.header_address() for m in cc]
    if reply_to:
        message["Reply-To"] = [m.header_address() for m in reply_to]
    message["Subject"] = submit.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    for name, value in submit.headers.items():
        try:
            message[name] = value
        except (ValueError, TypeError) as error:
            raise HeaderError(name, str(error)) from None

    _set_body(message, submit)
    for part in message.walk():
        # The email package stamps every part it makes; RFC 2045 wants it once, on top.
        if part is not message:
            del part["MIME-Version"]
    return BuiltMessage(
        raw=message.as_bytes(), message_id=message_id, needs_smtputf8=needs_smtputf8
    )


def _set_body(message: EmailMessage, submit: SubmitMessage) -> None:
    if submit.text is not None:
        message.set_content(submit.text)
        if submit.html is not None:
            message.add_alternative(submit.html, subtype="html")
    else:
        assert submit.html is not None
        message.set_content(submit.html, subtype="html")

    # Inline parts first: they turn the html part into multipart/related in place, which
    # must happen before an attachment wraps the whole message in multipart/mixed.
    html_part = _html_part(message)
    inline = [a for a in submit.attachments if a.content_id and html_part is not None]
    for attachment in inline:
        assert html_part is not None
        assert attachment.content_id is not None
        maintype, _, subtype = attachment.content_type.partition("/")
        html_part.add_related(
            attachment.data(),
            maintype=maintype,
            subtype=subtype,
            cid=f"<{attachment.content_id.strip('<>')}>",
            filename=attachment.filename,
            disposition="inline",
        )
    for attachment in submit.attachments:
        if attachment in inline:
            continue
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data(), maintype=maintype, subtype=subtype, filename=attachment.filename
        )


def _html_part(message: EmailMessage) -> EmailMessage | None:
    if message.get_content_type() == "text/html":
        return message
    for part in message.iter_parts():
        if isinstance(part, EmailMessage) and part.get_content_type() == "text/html":
            return part
    return None
