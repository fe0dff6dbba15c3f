"""suppress_automatically: inserts once, per tenant and case-insensitively, with its event;
an expired entry is replaced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from app.db import session_scope
from app.events.models import Event
from app.suppressions.models import Suppression, SuppressionReason
from app.suppressions.service import reasons_for, suppress_automatically
from tests.conftest import Env

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SOURCE = {
    "message_id": "msg_1",
    "smtp_code": 550,
    "enhanced_code": "5.1.1",
    "smtp_reply": "no such user",
    "bounce_class": "bad_mailbox",
}


def test_suppress_automatically_once_with_its_event(env: Env) -> None:
    env["POCHTA_SUPPRESSION_HARD_BOUNCE_DAYS"] = "30"
    with session_scope() as session:
        first = suppress_automatically(
            session,
            tenant="acme",
            email="Billy@Example.org",
            reason=SuppressionReason.hard_bounce,
            source=SOURCE,
            now=NOW,
        )
        again = suppress_automatically(
            session,
            tenant="acme",
            email="billy@example.ORG",
            reason=SuppressionReason.complaint,
            source=None,
            now=NOW,
        )
        other_tenant = suppress_automatically(
            session,
            tenant="zeta",
            email="billy@example.org",
            reason=SuppressionReason.manual,
            source=None,
            now=NOW,
        )
    assert first == {
        "email": "Billy@Example.org",
        "reason": "hard_bounce",
        "note": None,
        "created_at": "2026-12-01T12:00:00.000Z",
        "expires_at": "2026-12-31T12:00:00.000Z",
        "source": SOURCE,
    }
    assert again is None
    assert other_tenant is not None
    assert other_tenant["expires_at"] is None
    with session_scope() as session:
        events = session.scalars(select(Event).order_by(Event.tenant)).all()
        assert [(e.tenant, e.type.value, e.message_pk) for e in events] == [
            ("acme", "suppression.created", "msg_1"),
            ("zeta", "suppression.created", None),
        ]
        assert events[0].data == {"suppression": first}
        assert reasons_for(
            session, tenant="acme", emails=["BILLY@example.org", "x@example.org"], now=NOW
        ) == {"billy@example.org": SuppressionReason.hard_bounce}
        # Expired: it suppresses nothing, and a new refusal replaces it.
        later = NOW + timedelta(days=31)
        assert reasons_for(session, tenant="acme", emails=["billy@example.org"], now=later) == {}
        renewed = suppress_automatically(
            session,
            tenant="acme",
            email="billy@example.org",
            reason=SuppressionReason.complaint,
            source=None,
            now=later,
        )
        assert renewed is not None
        assert renewed["reason"] == "complaint"
        assert session.scalars(
            select(Suppression.reason).where(Suppression.tenant == "acme")
        ).all() == [SuppressionReason.complaint]
