"""Hard bounces suppress the address; the next submit to it is never sent (SPEC §8)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from app import db
from app.events.models import Event
from app.suppressions.models import Suppression
from harness.relay import ScriptedRelay
from tests.conftest import Env
from tests.support.flow import fetch, run_until_final, submit
from worker.delivery_loop import deliver_messages

NO_SUCH_USER = "550 5.1.1 <gone@example.org>: Recipient address rejected: User unknown"


def events(message_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """(type, data) of the events written so far, of one message or of all, oldest first."""
    with db.session_scope() as session:
        query = select(Event).order_by(Event.created_at, Event.id)
        if message_id is not None:
            query = query.where(Event.message_pk == message_id)
        return [(e.type.value, e.data) for e in session.scalars(query)]


def hard_bounces_counted() -> float:
    """pochta_suppressions_total{reason="hard_bounce"} as this (worker) process counted it."""
    return REGISTRY.get_sample_value("pochta_suppressions_total", {"reason": "hard_bounce"}) or 0.0


def suppressions() -> list[Suppression]:
    with db.session_scope() as session:
        rows = list(session.scalars(select(Suppression).order_by(Suppression.id)))
        session.expunge_all()
        return rows


def test_a_hard_bounce_suppresses_and_the_next_submit_is_never_sent(
    relay: ScriptedRelay, env: Env
) -> None:
    env["POCHTA_SUPPRESSION_HARD_BOUNCE_DAYS"] = "30"
    relay.script_rcpt("gone@example.org", NO_SUCH_USER)
    counted_before = hard_bounces_counted()
    first = submit(to=["gone@example.org"])
    bounced = run_until_final(first)
    assert hard_bounces_counted() == counted_before + 1
    assert bounced.status == "failed"
    (recipient,) = bounced.recipients
    assert (recipient.status, recipient.bounce_class) == ("failed", "bad_mailbox")
    assert bounced.attempts[-1].bounce_class == "bad_mailbox"

    (entry,) = suppressions()
    assert (entry.tenant, entry.email, entry.reason.value) == (
        "acme",
        "gone@example.org",
        "hard_bounce",
    )
    assert entry.source == {
        "message_id": first,
        "smtp_code": 550,
        "enhanced_code": "5.1.1",
        "smtp_reply": "<gone@example.org>: Recipient address rejected: User unknown",
        "bounce_class": "bad_mailbox",
    }
    assert entry.expires_at is not None
    assert entry.expires_at - entry.created_at == timedelta(days=30)
    created = [data for kind, data in events(first) if kind == "suppression.created"]
    assert [c["suppression"]["email"] for c in created] == ["gone@example.org"]
    assert created[0]["suppression"]["source"] == entry.source

    relay.reset()
    again = submit(to=["Gone@Example.ORG"])
    message = fetch(again)
    assert message.status == "failed"
    assert message.attempt_count == 0
    (suppressed,) = message.recipients
    assert (suppressed.email, suppressed.status, suppressed.error) == (
        "Gone@example.org",
        "suppressed",
        "suppressed: hard_bounce",
    )
    deliver_messages([again])
    assert fetch(again).attempts == []
    assert relay.commands == [], "nothing reached the relay"
    written = dict(events(again))
    assert sorted(written) == ["message.failed", "recipient.suppressed"]
    data = written["recipient.suppressed"]
    assert data["recipient"]["status"] == "suppressed"
    assert data["message"]["id"] == again
    assert data["report"] is None


def test_the_others_go_on_and_end_partially_sent_at_best(relay: ScriptedRelay, env: Env) -> None:
    relay.script_rcpt("gone@example.org", NO_SUCH_USER)
    run_until_final(submit(to=["gone@example.org"]))
    relay.reset()
    mixed = submit(to=["billy@example.org", "GONE@example.org"])
    assert fetch(mixed).status == "queued"
    done = run_until_final(mixed)
    assert done.status == "partially_sent"
    assert [(r.email, r.status) for r in done.recipients] == [
        ("billy@example.org", "sent"),
        ("GONE@example.org", "suppressed"),
    ]
    (received,) = relay.wait_for(1)
    assert received.rcpt_tos == ["billy@example.org"]


def test_a_policy_refusal_fails_and_suppresses_nothing(relay: ScriptedRelay, env: Env) -> None:
    relay.script_rcpt(
        "billy@example.org",
        "550 5.7.1 Service unavailable; Client host [192.0.2.10] blocked using zen.spamhaus.org",
    )
    message_id = submit(to=["billy@example.org"])
    message = run_until_final(message_id)
    assert message.status == "failed"
    (recipient,) = message.recipients
    assert (recipient.status, recipient.bounce_class) == ("failed", "policy")
    assert suppressions() == []
    assert "suppression.created" not in [kind for kind, _ in events()]
    relay.reset()
    assert fetch(submit(to=["billy@example.org"])).recipients[0].status == "pending"


def test_a_temporary_refusal_is_classed_and_suppresses_nothing(
    relay: ScriptedRelay, env: Env
) -> None:
    relay.script_rcpt("billy@example.org", "452 4.2.2 The email account is over quota")
    message_id = submit(to=["billy@example.org"])
    deliver_messages([message_id])
    (recipient,) = fetch(message_id).recipients
    assert (recipient.status, recipient.bounce_class) == ("deferred", "mailbox_full")
    assert run_until_final(message_id).recipients[0].bounce_class is None  # then it was sent
    assert suppressions() == []
