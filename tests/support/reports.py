"""Bounce and complaint reports as real MTAs and feedback loops write them, for tests.

postfix_dsn() follows what Postfix's bounce(8) daemon sends (bounce_notify_util.c): a
multipart/report with a text/plain notice, a message/delivery-status part and the
returned headers as text/rfc822-headers. arf_complaint() is an RFC 5965 feedback
report as the big mailbox providers' feedback loops send it.
"""

from __future__ import annotations

BOUNDARY = "4A1C0C0A13.1764633600/mx.example.net"


def postfix_dsn(
    *,
    to: str,
    recipient: str,
    message_id: str,
    status: str = "5.1.1",
    diagnostic: str = (
        "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in virtual\n    mailbox table"
    ),
) -> bytes:
    """A Postfix non-delivery report for one recipient, sent to `to` (the VERP address)."""
    said = diagnostic.format(rcpt=recipient)
    text = f"""\
Received: by mx.example.net (Postfix)
\tid 4A1C0C0A13; Tue,  1 Dec 2026 23:59:59 +0000 (UTC)
Date: Tue,  1 Dec 2026 23:59:59 +0000 (UTC)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{BOUNDARY}"
Content-Transfer-Encoding: 8bit
Message-Id: <20261201235959.4A1C0C0A13@mx.example.net>

This is a MIME-encapsulated message.

--{BOUNDARY}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

For further assistance, please send mail to postmaster.

If you do so, please include this problem report. You can
delete your own text from the attached returned message.

                   The mail system

<{recipient}>: host mail.example.org[192.0.2.25] said: {said} (in reply to RCPT TO
    command)

--{BOUNDARY}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4A1C0C0A13
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Tue,  1 Dec 2026 23:59:58 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mail.example.org
Diagnostic-Code: smtp; {said}

--{BOUNDARY}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

Return-Path: <{to}>
Received: from pochta.test (localhost [127.0.0.1])
\tby mx.example.net (Postfix) with ESMTPS id 4A1C0C0A13
\tfor <{recipient}>; Tue,  1 Dec 2026 23:59:58 +0000 (UTC)
From: sender@example.org
To: {recipient}
Subject: Hello
Message-ID: {message_id}
MIME-Version: 1.0

--{BOUNDARY}--
"""
    return text.replace("\n", "\r\n").encode()


def arf_complaint(*, to: str, recipient: str, message_id: str, mail_from: str) -> bytes:
    """An RFC 5965 abuse report for a message Pochta sent to `recipient`."""
    boundary = "part_complaint_7f3a"
    text = f"""\
From: Feedback Loop <fbl@isp.example>
To: {to}
Subject: FW: Hello
Date: Wed, 2 Dec 2026 00:10:00 +0000
MIME-Version: 1.0
Message-ID: <fbl-0001@isp.example>
Content-Type: multipart/report; report-type=feedback-report;
\tboundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Wed, 2 Dec 2026 00:05:00 +0000.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <{mail_from}>
Original-Rcpt-To: <{recipient}>
Arrival-Date: Wed, 2 Dec 2026 00:05:00 +0000
Source-IP: 192.0.2.1

--{boundary}
Content-Type: message/rfc822
Content-Disposition: inline

Return-Path: <{mail_from}>
From: sender@example.org
To: {recipient}
Subject: Hello
Message-ID: {message_id}
Date: Wed, 2 Dec 2026 00:04:59 +0000

hi

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode()
