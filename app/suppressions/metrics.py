"""What the suppression list counts: entries added, and sends it refused."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from app.suppressions.models import SuppressionReason

CREATED = Counter(
    "pochta_suppressions",
    "Addresses added to a suppression list, by reason (counted by the process that added them).",
    ["reason"],
)
for _reason in SuppressionReason:
    CREATED.labels(reason=_reason.value)  # every series from 0, before its first entry
REFUSED = Counter(
    "pochta_sends_suppressed",
    "Recipients not sent to because their address was suppressed at submit.",
)


def count_created(reasons: Iterable[str]) -> None:
    """Count added entries once their transaction has committed."""
    for reason in reasons:
        CREATED.labels(reason=SuppressionReason(reason).value).inc()


def count_refused(count: int) -> None:
    if count:
        REFUSED.inc(count)
