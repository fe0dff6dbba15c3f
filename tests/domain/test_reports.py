"""Reading delivery and feedback reports, and VERP tokens: pure logic, no database."""

from __future__ import annotations

from app.bounces import verp
from app.bounces.reports import ReportKind, read_report
from app.config import Settings
from tests.support.reports import arf_complaint, postfix_dsn

VERP_TO = "bounce+01kbf0000000000000000000-aaaaaaaaaaaaaaaa@bounces.example.org"


def test_a_postfix_dsn_gives_the_failed_recipient_with_its_code_and_diagnostic() -> None:
    raw = postfix_dsn(to=VERP_TO, recipient="nobody@example.org", message_id="<abc@example.org>")
    report = read_report(raw)
    assert report.kind is ReportKind.delivery_status
    (failed,) = report.failed
    assert failed.email == "nobody@example.org"
    assert (failed.smtp_code, failed.status) == (550, "5.1.1")
    assert failed.smtp_reply == (
        "<nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
    )
    assert failed.remote_mta == "mail.example.org"
    assert report.original_message_id == "<abc@example.org>"
    assert VERP_TO in report.original_senders
    assert report.details["reporting_mta"] == "dns; mx.example.net"


def test_a_diagnostic_that_is_no_smtp_reply_keeps_its_text_and_no_code() -> None:
    raw = postfix_dsn(
        to=VERP_TO,
        recipient="nobody@example.org",
        message_id="<abc@example.org>",
        diagnostic="unknown user",
    ).replace(b"Diagnostic-Code: smtp;", b"Diagnostic-Code: X-Postfix;")
    (failed,) = read_report(raw).failed
    assert (failed.smtp_code, failed.status, failed.smtp_reply) == (None, "5.1.1", "unknown user")


def test_a_delayed_recipient_is_not_failed() -> None:
    raw = postfix_dsn(to=VERP_TO, recipient="slow@example.org", message_id="<abc@example.org>")
    report = read_report(raw.replace(b"Action: failed", b"Action: delayed"))
    assert report.kind is ReportKind.delivery_status
    assert report.failed == ()


def test_an_arf_complaint_names_the_complainant_and_the_original_message() -> None:
    raw = arf_complaint(
        to="fbl@bounces.example.org",
        recipient="billy@example.org",
        message_id="<abc@example.org>",
        mail_from=VERP_TO,
    )
    report = read_report(raw)
    assert report.kind is ReportKind.feedback_report
    assert report.complainants == ("billy@example.org",)
    assert report.original_message_id == "<abc@example.org>"
    assert report.original_senders[0] == VERP_TO
    assert report.details["feedback_type"] == "abuse"


def test_a_plain_message_is_no_report() -> None:
    raw = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nOut of office\r\n"
    assert read_report(raw).kind is ReportKind.other
    assert read_report(b"\xff\xfe garbage").kind is ReportKind.other


def test_a_verp_address_names_its_message_and_a_forged_one_nothing() -> None:
    settings = Settings(secret_key="k1")
    message_id = "msg_01kbf3w3x5q8c9d0e1f2g3h4j5"
    address = verp.make_address(settings, message_id, "bounces.example.org")
    local = address.partition("@")[0]
    assert len(local.encode()) <= 64
    assert verp.read_address(settings, address) == message_id
    assert verp.read_address(settings, address.upper()) == message_id
    other_key = Settings(secret_key="k2")
    assert verp.read_address(other_key, address) is None
    forged = address.replace(message_id.removeprefix("msg_")[:4], "0000")
    assert verp.read_address(settings, forged) is None
    assert verp.has_token(forged)
    assert verp.read_address(settings, "sender@example.org") is None


def test_a_multi_line_gmail_reply_keeps_its_lines_without_their_codes() -> None:
    gmail = (
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        "    550-5.1.1 double-checking the recipient's email address for typos or\n"
        "    550 5.1.1 https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp"
    )
    raw = postfix_dsn(
        to=VERP_TO, recipient="gone@gmail.com", message_id="<abc@example.org>", diagnostic=gmail
    )
    (failed,) = read_report(raw).failed
    assert (failed.smtp_code, failed.status) == (550, "5.1.1")
    assert failed.smtp_reply == (
        "The email account that you tried to reach does not exist. Please try\n"
        "double-checking the recipient's email address for typos or\n"
        "https://support.google.com/mail/?p=NoSuchUser a1si123 - gsmtp"
    )
