"""The cost of keeping every attempt's SMTP transcript: the drain with
POCHTA_TRANSCRIPTS=all against the same drain with none (issue 15: within 15 %)."""

from __future__ import annotations

from bench.figures import DrainFigure
from bench.phases import Context, drain, queue_for_drain, stop_delivery

VARIABLE = "POCHTA_TRANSCRIPTS"


def drain_keeping(ctx: Context, transcripts: str) -> DrainFigure:
    """The batch-queued drain, with the workers started under POCHTA_TRANSCRIPTS=transcripts."""
    stop_delivery(ctx)
    previous = ctx.stack.env.get(VARIABLE)
    ctx.stack.env[VARIABLE] = transcripts
    try:
        count, _ = queue_for_drain(ctx)
        figure = drain(ctx, count, phase=f"drain, {VARIABLE}={transcripts}")
        kept = ctx.database.kept_transcripts()
        expected = count if transcripts == "all" else 0
        if kept != expected:
            raise RuntimeError(f"{VARIABLE}={transcripts}: {kept} transcripts kept, not {expected}")
        return figure
    finally:
        stop_delivery(ctx)
        if previous is None:
            ctx.stack.env.pop(VARIABLE, None)
        else:
            ctx.stack.env[VARIABLE] = previous


def drains(ctx: Context) -> tuple[DrainFigure, DrainFigure]:
    """(none, all): the same backlog drained without transcripts, then keeping all."""
    return drain_keeping(ctx, "none"), drain_keeping(ctx, "all")
