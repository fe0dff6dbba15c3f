"""The RFC 5322 bytes Pochta builds, read back with the standard library's parser."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest

from app.messages.mime import HeaderError, _build_fast, _build_modern, build_message
from app.messages.schemas import SubmitMessage

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
BASE: dict[str, Any] = {"from": "a@example.org", "to": ["b@example.org"], "text": "hi"}
PDF = b"%PDF-1.4 \x00\xff binary"
PNG = b"\x89PNG\r\n\x1a\n"


def attachment(
    filename: str, data: bytes, *, content_type: str | None = None, content_id: str | None = None
) -> dict[str, str]:
    fields = {"filename": filename, "content": base64.b64encode(data).decode()}
    if content_type is not None:
        fields["content_type"] = content_type
    if content_id is not None:
        fields["content_id"] = content_id
    return fields


def build(**fields: Any) -> tuple[bytes, EmailMessage]:
    body = {**BASE, **fields}
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
    fields: dict[str, Any] = {
        "html": '<img src="cid:logo">',
        "attachments": [
            attachment("a.pdf", PDF, content_type="application/pdf"),
            attachment("logo.png", b"PNG", content_type="image/png", content_id="logo"),
        ],
    }
    submit = SubmitMessage.model_validate({**BASE, **fields})
    assert _build_fast(submit, local_id="msg_x1", now=NOW) is not None
    _, parsed = build(**fields)
    assert parsed.get_content_type() == "multipart/mixed"
    (attached,) = list(parsed.iter_attachments())
    assert isinstance(attached, EmailMessage)
    assert attached.get_filename() == "a.pdf"
    assert attached.get_content() == PDF
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


# The shapes the fast (compat32) builder takes; each must read back as the modern one's.
COMMON_SHAPES: dict[str, dict[str, Any]] = {
    "ascii text": {"subject": "Hello", "text": "Hi!\nSecond line.\n"},
    "cyrillic": {
        "from": "Вася Пупкин <vasiapupkin@ya.ru>",
        "subject": "Привет, Билли",
        "text": "Как дела?",
    },
    "one 2000-char line": {"text": "x" * 2000},
    "text and html": {"text": "plain", "html": "<p>rich</p>"},
    "quoted names": {
        "to": [
            '"Doe, John" <j@example.org>',
            'Say "hi" <q@example.org>',
            "J. R. R. Tolkien <t@example.org>",
            '"a@b" <c@example.org>',
        ]
    },
    "cc and reply-to": {
        "cc": ["c1@example.org", "Cé Deux <c2@example.org>"],
        "reply_to": ["r1@example.org", "R Two <r2@example.org>"],
    },
    "long subject": {"subject": "A subject long enough that it must fold " * 4},
    "custom headers": {"headers": {"X-Campaign": "welcome", "X-Note": "привет", "X-Empty": ""}},
    "From lines, mixed line ends": {"text": "From me\r\ntwo\rthree\n", "html": "é" * 10},
    "attachment": {"attachments": [attachment("a.pdf", PDF, content_type="application/pdf")]},
    "two attachments, text and html": {
        "html": "<p>rich</p>",
        "attachments": [
            attachment("a.bin", bytes(range(256)) * 40),
            attachment("notes.csv", b"a,b\r\n1,2\r\n", content_type="text/csv"),
        ],
    },
    "non-ascii filename": {"attachments": [attachment("Отчёт за ноябрь.pdf", PDF)]},
    "long filenames": {
        "attachments": [
            attachment("a long file name with spaces " * 8, b"1"),
            attachment("x" * 255, b"2"),
            attachment('quote " back\\slash; semicolon', b"3"),
            attachment("я" * 100, b"4"),
        ]
    },
    "inline part, html only": {
        "text": None,
        "html": '<img src="cid:logo">',
        "attachments": [attachment("logo.png", PNG, content_type="image/png", content_id="logo")],
    },
    "inline parts and an attachment, text and html": {
        "html": '<img src="cid:a"><img src="cid:b@x">',
        "attachments": [
            attachment("a.png", PNG, content_type="image/png", content_id="a"),
            attachment("Отчёт.pdf", PDF),
            attachment("логотип.png", PNG, content_type="image/png", content_id="<b@x>"),
        ],
    },
    "content id without html": {
        "attachments": [attachment("logo.png", PNG, content_type="image/png", content_id="l")]
    },
}
READ_BACK = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "MIME-Version"]


def read_back(raw: bytes, custom: list[str]) -> tuple[object, ...]:
    parsed = message_from_bytes(raw, policy=policy.default)
    headers = {name: [str(v) for v in parsed.get_all(name, [])] for name in READ_BACK + custom}
    parts = [
        (
            part.get_content_type(),
            part["Content-Transfer-Encoding"],
            part.get_content_disposition(),
            part.get_filename(),
            # A Content-ID too long for its line starts the next one; the parser keeps that
            # folding space, other readers drop it.
            str(part["Content-ID"]).strip() if part["Content-ID"] else None,
            None if part.is_multipart() else part.get_content(),
        )
        for part in parsed.walk()
        if isinstance(part, EmailMessage)
    ]
    return headers, parts


@pytest.mark.parametrize("fields", COMMON_SHAPES.values(), ids=COMMON_SHAPES.keys())
def test_fast_builder_reads_back_as_the_modern_one(fields: dict[str, Any]) -> None:
    submit = SubmitMessage.model_validate({**BASE, **fields})
    fast = _build_fast(submit, local_id="msg_x1", now=NOW)
    modern = _build_modern(submit, local_id="msg_x1", now=NOW)
    assert fast is not None, "a common shape must take the fast builder"
    assert (fast.message_id, fast.needs_smtputf8) == (modern.message_id, modern.needs_smtputf8)
    custom = list(submit.headers)
    assert read_back(fast.raw, custom) == read_back(modern.raw, custom)
    assert fast.raw.isascii()
    lines = fast.raw.split(b"\r\n")
    assert not any(b"\r" in line or b"\n" in line for line in lines), "CRLF line ends only"
    assert max(map(len, lines)) <= 998  # RFC 5322 §2.1.1
    assert fast.raw.count(b"MIME-Version:") == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"to": ["пользователь@пример.рф"]},
        {"headers": {"Sender": "s@example.org"}},
        {"subject": "a" * 998},
        {"attachments": [attachment("я" * 255, b"a")]},
    ],
    ids=["utf-8 address", "structured custom header", "unfoldable subject", "unfoldable filename"],
)
def test_other_shapes_are_left_to_the_modern_builder(fields: dict[str, Any]) -> None:
    submit = SubmitMessage.model_validate({**BASE, **fields})
    assert _build_fast(submit, local_id="msg_x1", now=NOW) is None
    raw = build_message(submit, local_id="msg_x1", now=NOW).raw
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_a_custom_header_the_email_package_refuses_is_a_header_error() -> None:
    with pytest.raises(HeaderError) as error:
        build(headers={"Sender": "s@example.org", "sender": "t@example.org"})
    assert error.value.name == "sender"


# The modern builder's RFC 2047 folder (policy SMTP, 7-bit) gets these wrong; compat32
# builds every message with ASCII addresses, with or without attachments.
WITH_AND_WITHOUT_ATTACHMENT = pytest.mark.parametrize(
    "attachments",
    [[], [attachment("a.pdf", PDF, content_type="application/pdf")]],
    ids=["no attachment", "attachment"],
)


@WITH_AND_WITHOUT_ATTACHMENT
def test_a_long_non_ascii_subject_keeps_every_space(attachments: list[dict[str, str]]) -> None:
    # The modern folder reads back "…письма, которуюпридётся…" here.
    subject = "Длинная тема письма, которую придётся сложить " * 4
    _, parsed = build(subject=subject, attachments=attachments)
    assert str(parsed["Subject"]) == subject


@WITH_AND_WITHOUT_ATTACHMENT
def test_every_address_of_a_folded_list_survives(attachments: list[dict[str, str]]) -> None:
    # The modern folder writes two of these commas as `=?utf-8?q?=2C?=` (one with an
    # address inside the encoded word), and a reader then finds 6 addresses, not 8.
    names = [
        "Александр Соколова",
        "Екатерина Кузнецов",
        "Владимир Воскресенская",
        "Светлана Мамин-Сибиряк",
        "Константин Лебедева",
        "Анастасия Константинопольский",
        "Дмитрий Иванова",
        "Мария Петров-Водкин",
    ]
    to = [f"{name} <user{i}@mail.example.org>" for i, name in enumerate(names)]
    raw, parsed = build(to=to, attachments=attachments)
    addresses = parsed["To"].addresses
    assert [a.addr_spec for a in addresses] == [f"user{i}@mail.example.org" for i in range(8)]
    assert b"=2C" not in raw
    # This parser keeps the space between two encoded words of a display name (CPython
    # gh-128110); decode_header drops it, as RFC 2047 §6.2 says.
    header = message_from_bytes(raw, policy=policy.compat32)["To"]
    assert str(make_header(decode_header(header))) == ", ".join(to)


@WITH_AND_WITHOUT_ATTACHMENT
def test_a_long_url_in_a_custom_header_stays_a_url(attachments: list[dict[str, str]]) -> None:
    # RFC 2369: List-Unsubscribe is <URL>s; an encoded word there would not be read as one.
    url = "<https://example.org/unsubscribe/" + "a" * 166 + ">"
    assert len(url) == 200
    raw, parsed = build(headers={"List-Unsubscribe": url}, attachments=attachments)
    assert url.encode() in raw
    assert str(parsed["List-Unsubscribe"]).strip() == url


def test_a_long_content_id_stays_a_message_id() -> None:
    # RFC 2047 §5: no encoded word in a msg-id; the modern folder makes five of this one.
    content_id = "logo." + "x" * 230 + "@example.org"
    raw, parsed = build(
        html=f'<img src="cid:{content_id}">',
        attachments=[attachment("logo.png", PNG, content_type="image/png", content_id=content_id)],
    )
    assert f"<{content_id}>".encode() in raw
    (inline,) = [p for p in parsed.walk() if p["Content-ID"]]
    assert str(inline["Content-ID"]).strip() == f"<{content_id}>"


def test_a_non_ascii_filename_is_written_per_rfc_2231() -> None:
    raw, parsed = build(attachments=[attachment("Отчёт за ноябрь.pdf", PDF)])
    assert raw.isascii()
    assert b"filename*=utf-8''%D0%9E%D1%82%D1%87%D1%91%D1%82%20" in raw
    (part,) = parsed.iter_attachments()
    assert part.get_filename() == "Отчёт за ноябрь.pdf"
