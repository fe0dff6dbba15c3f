"""The RFC 5322 bytes Pochta builds, read back with the standard library's parser."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from app.messages.mime import build_message
from app.messages.schemas import SubmitMessage

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def build(**fields: Any) -> tuple[bytes, EmailMessage]:
    body: dict[str, Any] = {"from": "a@example.org", "to": ["b@example.org"], "text": "hi"}
    body.update(fields)
    raw = build_message(SubmitMessage.model_validate(body), local_id="msg_x1", now=NOW).raw
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def test_cyrillic_display_name_subject_and_body_decode_to_the_same_text() -> None:
    raw, parsed = build(
        **{"from": "Вася Пупкин <vasiapupkin@ya.ru>"}, subject="Привет, Билли", text="Как дела?"
    )
    assert raw.isascii(), "headers must be RFC 2047 words and the body 7-bit"
    assert str(parsed["From"]) == "Вася Пупкин <vasiapupkin@ya.ru>"
    assert str(parsed["Subject"]) == "Привет, Билли"
    body = parsed.get_body(("plain",))
    assert body is not None
    # MIME text travels in canonical form, CRLF line ends (RFC 2045 §6.7).
    assert body.get_content() == "Как дела?\r\n"


def test_required_headers_and_stable_message_id() -> None:
    _, parsed = build()
    assert parsed["Message-ID"] == "<x1@example.org>"
    assert parsed["MIME-Version"] == "1.0"
    assert parsed["Date"] == "Fri, 27 Nov 2026 12:00:00 +0000"


def test_bcc_is_never_in_the_headers() -> None:
    raw, parsed = build(bcc=["hidden@example.org"])
    assert b"hidden@example.org" not in raw
    assert parsed["Bcc"] is None


def test_text_and_html_make_multipart_alternative() -> None:
    _, parsed = build(text="plain", html="<p>rich</p>")
    assert parsed.get_content_type() == "multipart/alternative"
    html = parsed.get_body(("html",))
    assert html is not None
    assert html.get_content().rstrip() == "<p>rich</p>"


def test_attachments_make_multipart_mixed_and_inline_parts_related() -> None:
    pdf = b"%PDF-1.4 \x00\xff binary"
    _, parsed = build(
        html='<img src="cid:logo">',
        attachments=[
            {
                "filename": "a.pdf",
                "content_type": "application/pdf",
                "content": base64.b64encode(pdf).decode(),
            },
            {
                "filename": "logo.png",
                "content_type": "image/png",
                "content": base64.b64encode(b"PNG").decode(),
                "content_id": "logo",
            },
        ],
    )
    assert parsed.get_content_type() == "multipart/mixed"
    (attachment,) = list(parsed.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    assert attachment.get_filename() == "a.pdf"
    assert attachment.get_content() == pdf
    related = [p for p in parsed.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1
    inline = [p for p in parsed.walk() if p["Content-ID"] == "<logo>"]
    assert len(inline) == 1


def test_custom_headers_are_written_and_unicode_values_encoded() -> None:
    raw, parsed = build(headers={"X-Campaign": "welcome", "X-Note": "привет"})
    assert parsed["X-Campaign"] == "welcome"
    assert str(parsed["X-Note"]) == "привет"
    assert raw.isascii()


def test_non_ascii_address_needs_smtputf8() -> None:
    submit = SubmitMessage.model_validate(
        {"from": "a@example.org", "to": ["пользователь@пример.рф"], "text": "x"}
    )
    built = build_message(submit, local_id="msg_x1", now=NOW)
    assert built.needs_smtputf8
    assert "пользователь@пример.рф".encode() in built.raw
