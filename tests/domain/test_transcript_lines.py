"""worker/smtp/transcript.py: how noted commands and replies become transcript lines."""

from __future__ import annotations

from worker.smtp.transcript import Transcript


def test_a_multi_line_reply_is_one_line_each_as_the_relay_sent_it() -> None:
    transcript = Transcript()
    transcript.sent("EHLO pochta.test")
    transcript.received(250, b"relay.example.org\nSIZE 1000\nPIPELINING")
    transcript.received(250, b"")
    transcript.received(-1, b"garbled")
    lines = [(line.dir, line.line) for line in transcript.lines()]
    assert lines == [
        ("out", "EHLO pochta.test"),
        ("in", "250-relay.example.org"),
        ("in", "250-SIZE 1000"),
        ("in", "250 PIPELINING"),
        ("in", "250"),
        ("in", "garbled"),
    ]


def test_times_are_whole_milliseconds_from_the_start() -> None:
    transcript = Transcript()
    transcript.started -= 1.5  # as if the attempt began 1.5 s ago
    transcript.sent("RSET")
    (line,) = transcript.lines()
    assert line.at_ms >= 1500
    assert isinstance(line.at_ms, int)
