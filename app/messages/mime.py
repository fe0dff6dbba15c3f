"""Building the RFC 5322 bytes of a submitted email, once, with the `email` package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import encoders, policy
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, Message
from email.utils import format_datetime, formataddr
from typing import TypeAlias

from app.messages.addresses import Mailbox
from app.messages.lines import HeaderError, check_line_lengths
from app.messages.parties import Parties
from app.messages.schemas import Attachment, SubmitMessage

__all__ = ["BuiltMessage", "HeaderError", "build_message"]

# 7-bit bodies (quoted-printable or base64) and RFC 2047 headers pass every relay, with
# or without 8BITMIME, so the stored bytes are exactly what any relay receives.
SEVEN_BIT = policy.SMTP.clone(cte_type="7bit")
# A non-ASCII address cannot be an encoded-word (RFC 2047 §5): such a message needs
# UTF-8 headers and a relay that offers SMTPUTF8 (RFC 6532).
UTF8_HEADERS = policy.SMTPUTF8.clone(cte_type="7bit")

# Two builders. The compat32 API (Message, Header) builds every message whose addresses
# are ASCII: it writes header values as given and folds them only at whitespace, ~0.2 ms
# per 1 KB plain-text message. The modern API (EmailMessage) parses every header into a
# tree and refolds it, ~0.75 ms, and in 7-bit mode its RFC 2047 folder loses spaces in
# long non-ASCII subjects, can write a list's comma as an encoded word (readers then drop
# an address) and encodes long URLs (RFC 2369). It stays for what compat32 cannot write:
# UTF-8 addresses (SMTPUTF8, raw UTF-8 headers, no encoded words), the structured custom
# headers below, and header runs too long to fold. Both read back the same
# (tests/domain/test_mime.py checks it).
COMPAT32_SMTP = policy.compat32.clone(linesep="\r\n", mangle_from_=False)
# Custom headers the modern API parses with structure (Sender, Resent-*, Orig-Date): it may
# refuse or rewrite them, and that behaviour is kept by leaving them to it.
_STRUCTURED = frozenset(HeaderRegistry().registry)
# compat32 folds ASCII only at whitespace, and writes a non-ASCII filename as one RFC 2231
# parameter (no continuations); a longer run could not fit a line of 998 octets (RFC 5322
# §2.1.1), so such a message goes to the modern folder, which encodes and splits it.
_UNFOLDABLE = re.compile(r"\S{900,}")
# set_content() writes text as it is (7bit) if it is ASCII in lines of at most 78 octets.
_MAX_7BIT_LINE = 78
_ASCII_BYTES = bytes(range(128))
_US_ASCII = Charset("us-ascii")
_UTF8_BASE64 = Charset("utf-8")  # the email package's default body encoding for UTF-8
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


# compat32 keeps header values as given, a str or an email.header.Header.
_Compat32Message: TypeAlias = "Message[str | Header, str | Header]"
# A part to attach: typeshed's attach() takes parts whose headers read back as str.
_Part: TypeAlias = "Message[str, str | Header]"
# What the _fill_* functions write into: the message itself or one of its parts.
_Target: TypeAlias = "Message[object, str | Header]"


@dataclass(frozen=True, slots=True)
class BuiltMessage:
    raw: bytes
    message_id: str
    needs_smtputf8: bool


def build_message(submit: SubmitMessage, *, local_id: str, now: datetime) -> BuiltMessage:
    """The bytes to send, with a Message-ID derived from local_id so retries reuse it."""
    built = _build_fast(submit, local_id=local_id, now=now)
    if built is None:
        built = _build_modern(submit, local_id=local_id, now=now)
    check_line_lengths(built.raw, submit)
    return built


def _build_fast(submit: SubmitMessage, *, local_id: str, now: datetime) -> BuiltMessage | None:
    """The message built with the compat32 API, or None if it needs the modern one."""
    if any(name.lower() in _STRUCTURED for name in submit.headers):
        return None
    parties = Parties.of(submit)
    if parties.needs_smtputf8:
        return None

    message: _Compat32Message = Message(policy=COMPAT32_SMTP)
    for name, mailboxes in (
        ("From", [parties.sender]),
        ("To", parties.to),
        ("Cc", parties.cc),
        ("Reply-To", parties.reply_to),
    ):
        if mailboxes:
            message[name] = ", ".join(_address(m) for m in mailboxes)
    message["Subject"] = _text(submit.subject, name="Subject")
    message["Date"] = format_datetime(now)
    message_id = parties.message_id(local_id)
    message["Message-ID"] = message_id
    for name, value in submit.headers.items():
        message[name] = _text(value, name=name)
    message["MIME-Version"] = "1.0"
    _fill_body(message, submit)

    for part in message.walk():
        if part is not message:
            # set_payload with a charset stamps each part; RFC 2045 wants it once, on top.
            del part["MIME-Version"]
        if any(isinstance(v, str) and _UNFOLDABLE.search(v) for v in part.values()):
            return None
    return BuiltMessage(raw=message.as_bytes(), message_id=message_id, needs_smtputf8=False)


def _fill_body(message: _Target, submit: SubmitMessage) -> None:
    """The MIME tree _set_body makes: attachments wrap the rest in multipart/mixed."""
    # Inline parts go with the html part; without one they are attachments like any other.
    inline = [a for a in submit.attachments if a.content_id and submit.html is not None]
    attached = [a for a in submit.attachments if a not in inline]
    if not attached:
        _fill_alternative(message, submit, inline)
        return
    message["Content-Type"] = "multipart/mixed"
    body: _Part = Message()
    _fill_alternative(body, submit, inline)
    message.attach(body)
    for attachment in attached:
        message.attach(_attachment(attachment, "attachment"))


def _fill_alternative(part: _Target, submit: SubmitMessage, inline: list[Attachment]) -> None:
    """Text and html as multipart/alternative, or the one of them there is."""
    if submit.html is None:
        assert submit.text is not None
        _set_text(part, submit.text, "plain")
        return
    if submit.text is None:
        _fill_html(part, submit.html, inline)
        return
    part["Content-Type"] = "multipart/alternative"
    plain: _Part = Message()
    _set_text(plain, submit.text, "plain")
    html: _Part = Message()
    _fill_html(html, submit.html, inline)
    part.attach(plain)
    part.attach(html)


def _fill_html(part: _Target, html: str, inline: list[Attachment]) -> None:
    """The html part, and with inline parts multipart/related with the html first."""
    if not inline:
        _set_text(part, html, "html")
        return
    part["Content-Type"] = "multipart/related"
    text: _Part = Message()
    _set_text(text, html, "html")
    part.attach(text)
    for attachment in inline:
        part.attach(_attachment(attachment, "inline"))


def _attachment(attachment: Attachment, disposition: str) -> _Part:
    """A base64 part; a non-ASCII filename is written per RFC 2231 by the email package."""
    part: _Part = Message()
    part["Content-Type"] = attachment.content_type
    part.set_payload(attachment.data())
    encoders.encode_base64(part)
    part.add_header("Content-Disposition", disposition, filename=attachment.filename)
    if disposition == "inline" and attachment.content_id:
        cid = f"<{attachment.content_id.strip('<>')}>"
        part["Content-ID"] = _text(cid, name="Content-ID")
    return part


def _address(mailbox: Mailbox) -> str:
    """`Name <addr>`, the name quoted or as RFC 2047 encoded words if it needs to be."""
    if mailbox.name.isascii():
        return formataddr((mailbox.name, mailbox.email))
    # formataddr would make the name one encoded word of any length; RFC 2047 §2 allows 75
    # characters, so Header splits it, and the header folds between the words if it must.
    words = Header(mailbox.name, "utf-8").encode(maxlinelen=75).split()
    return f"{' '.join(words)} <{mailbox.email}>"


def _text(value: str, *, name: str) -> str | Header:
    """ASCII as it is (compat32 folds it at whitespace), else RFC 2047 encoded words."""
    if value.isascii():
        return value
    # Readers drop whitespace before a value; inside an encoded word it would stay.
    return Header(value.lstrip(" \t"), "utf-8", header_name=name)


def _set_text(part: Message[object, str], text: str, subtype: str) -> None:
    """Text in canonical form (CRLF line ends), encoded the way set_content() would."""
    lines = text.encode("utf-8").splitlines()
    data = b"\r\n".join(lines) + b"\r\n"
    if data.isascii() and max(map(len, lines), default=0) <= _MAX_7BIT_LINE:
        charset = _US_ASCII
    elif len(data.translate(None, _ASCII_BYTES)) * 6 > len(data):
        # Quoted-printable spends 3 octets on each non-ASCII octet, base64 4/3 on every
        # octet: past a sixth non-ASCII, base64 is the smaller (set_content sniffs the same).
        charset = _UTF8_BASE64
    else:
        charset = _UTF8_QP
    part["Content-Type"] = f"text/{subtype}"
    part.set_payload(data, charset)


def _build_modern(submit: SubmitMessage, *, local_id: str, now: datetime) -> BuiltMessage:
    """Any message, with the modern API; build_message uses it where compat32 cannot."""
    parties = Parties.of(submit)
    message = EmailMessage(policy=UTF8_HEADERS if parties.needs_smtputf8 else SEVEN_BIT)
    message_id = parties.message_id(local_id)
    message["From"] = parties.sender.header_address()
    if parties.to:
        message["To"] = [m.header_address() for m in parties.to]
    if parties.cc:
        message["Cc"] = [m.header_address() for m in parties.cc]
    if parties.reply_to:
        message["Reply-To"] = [m.header_address() for m in parties.reply_to]
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
        raw=message.as_bytes(), message_id=message_id, needs_smtputf8=parties.needs_smtputf8
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
