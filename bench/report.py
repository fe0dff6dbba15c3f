"""The results as Markdown: medians over the runs, ratios to the ceilings, the issue's targets."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.figures import (
    ACCEPT,
    BATCH,
    DRAIN,
    END_TO_END,
    SINGLES,
    SINGLES_DRAIN,
    LoadFigure,
    RunFigures,
)
from bench.options import Options
from bench.stats import median

MB = 1024 * 1024
RSS_LIMIT_MB = 150.0
# The targets, checked against the medians: issue 16's are ratios to a ceiling of the
# same run (what a shared machine can compare); batch and drain keep issue 6's rates.
ACCEPT_SHARE_OF_HEALTHZ = 0.25
ACCEPT_P99_TARGET = 0.025
BATCH_TARGET = 10_000.0
DRAIN_TARGET = 2000.0
SINGLES_SHARE_OF_BATCH_DRAIN = 0.8
E2E_SHARE_OF_HEALTHZ = 0.15
# Issue 15: the drain keeping every transcript within 15 % of the drain keeping none.
TRANSCRIPTS_SHARE_OF_NONE = 0.85


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    median: str
    spread: str
    ratio: str
    target: str
    verdict: str


def _values(runs: Sequence[RunFigures], pick: Callable[[RunFigures], float | None]) -> list[float]:
    return [v for v in (pick(run) for run in runs) if v is not None and not math.isnan(v)]


def _ratios(
    runs: Sequence[RunFigures],
    top: Callable[[RunFigures], float | None],
    bottom: Callable[[RunFigures], float | None],
) -> list[float]:
    """Per-run ratios (each run against its own ceiling), so noise between runs cancels."""
    ratios = []
    for run in runs:
        a, b = top(run), bottom(run)
        if a is not None and b:
            ratios.append(a / b)
    return ratios


def _n(value: float, unit: str = "") -> str:
    return "—" if math.isnan(value) else f"{value:,.0f}{unit}"


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:,.1f} ms"


def _spread(values: Sequence[float], fmt: Callable[[float], str] = _n) -> str:
    return f"{fmt(min(values))} – {fmt(max(values))}" if len(values) > 1 else ""


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "missed")


def _rate_row(
    figure: str,
    values: list[float],
    unit: str,
    ratio: tuple[list[float], str] | None = None,
    target: tuple[float, str] | None = None,
    *,
    by_ratio: bool = False,
) -> Row:
    """A rate's row; the target is met by the median rate, or by the median ratio."""
    middle = median(values)
    ratio_text = f"{median(ratio[0]):.2f} × {ratio[1]}" if ratio and ratio[0] else "—"
    judged = median(ratio[0]) if by_ratio and ratio and ratio[0] else middle
    ok = None if target is None or math.isnan(judged) else judged >= target[0]
    return Row(
        figure,
        _n(middle, f" {unit}"),
        _spread(values),
        ratio_text,
        target[1] if target else "—",
        _verdict(ok),
    )


def _load(run: RunFigures, which: str) -> LoadFigure | None:
    figure: LoadFigure | None = getattr(run, which)
    return figure


def rows(runs: Sequence[RunFigures], options: Options, batch_missing: bool) -> list[Row]:
    """Every figure's row, in the order the issue lists them."""

    def load_value(which: str, field: str) -> Callable[[RunFigures], float | None]:
        def pick(run: RunFigures) -> float | None:
            figure = _load(run, which)
            return None if figure is None else float(getattr(figure, field))

        return pick

    def build(run: RunFigures) -> float | None:
        return run.smtplib_build

    def prebuilt(run: RunFigures) -> float | None:
        return run.smtplib_prebuilt

    def drain(run: RunFigures) -> float | None:
        return None if run.drain is None else run.drain.steady

    def drain_from_start(run: RunFigures) -> float | None:
        return None if run.drain is None else run.drain.from_start

    def singles(run: RunFigures) -> float | None:
        return None if run.drain_singles is None else run.drain_singles.steady

    def singles_from_start(run: RunFigures) -> float | None:
        return None if run.drain_singles is None else run.drain_singles.from_start

    def no_transcripts(run: RunFigures) -> float | None:
        return run.drain_no_transcripts.steady if run.drain_no_transcripts else None

    def all_transcripts(run: RunFigures) -> float | None:
        return run.drain_all_transcripts.steady if run.drain_all_transcripts else None

    healthz = load_value("healthz", "per_second")
    accept = load_value("accept", "per_second")
    p50 = median(_values(runs, load_value("accept", "p50")))
    p99_values = _values(runs, load_value("accept", "p99"))
    p99 = median(p99_values)
    result = [
        _rate_row("HTTP ceiling: GET /healthz, same clients", _values(runs, healthz), "req/s"),
        _rate_row(
            "accept: POST /v1/messages, 1 KB",
            _values(runs, accept),
            "req/s",
            (_ratios(runs, accept, healthz), "/healthz"),
            (ACCEPT_SHARE_OF_HEALTHZ, f"≥ {ACCEPT_SHARE_OF_HEALTHZ} × /healthz"),
            by_ratio=True,
        ),
        Row(
            "accept latency p50 / p99, saturated",
            f"{_ms(p50)} / {_ms(p99)}",
            _spread(p99_values, _ms),
            "—",
            f"p99 ≤ {ACCEPT_P99_TARGET * 1000:.0f} ms",
            _verdict(None if math.isnan(p99) else p99 <= ACCEPT_P99_TARGET),
        ),
    ]
    if batch_missing:
        result.append(Row("batch accept: 500 per POST", "endpoint missing", "", "—", "—", "—"))
    else:
        result.append(
            _rate_row(
                "batch accept: 500 per POST",
                _values(runs, lambda r: r.batch),
                "emails/s",
                (_ratios(runs, lambda r: r.batch, build), "smtplib build+send"),
                (BATCH_TARGET, f"≥ {BATCH_TARGET:,.0f} emails/s"),
            )
        )
    ceiling = "smtplib prebuilt"
    result += [
        _rate_row(
            "drain: backlog queued in batches",
            _values(runs, drain),
            "emails/s",
            (_ratios(runs, drain, prebuilt), ceiling),
            (DRAIN_TARGET, f"≥ {DRAIN_TARGET:,.0f} emails/s"),
        ),
        _rate_row(
            "drain, counting the workers' start",
            _values(runs, drain_from_start),
            "emails/s",
            (_ratios(runs, drain_from_start, prebuilt), ceiling),
        ),
        *_webhooks_row(runs),
        _rate_row(
            "drain: backlog queued by single POSTs",
            _values(runs, singles),
            "emails/s",
            (_ratios(runs, singles, prebuilt), ceiling),
        ),
        _rate_row(
            "drain of single POSTs ÷ drain of batches",
            [],
            "",
            (_ratios(runs, singles, drain), "batch drain"),
            (SINGLES_SHARE_OF_BATCH_DRAIN, f"≥ {SINGLES_SHARE_OF_BATCH_DRAIN} × batch drain"),
            by_ratio=True,
        ),
        _rate_row(
            "drain of single POSTs, counting the workers' start",
            _values(runs, singles_from_start),
            "emails/s",
            (_ratios(runs, singles_from_start, prebuilt), ceiling),
        ),
        _rate_row(
            "drain: POCHTA_TRANSCRIPTS=none",
            _values(runs, no_transcripts),
            "emails/s",
            (_ratios(runs, no_transcripts, prebuilt), ceiling),
        ),
        _rate_row(
            "drain: POCHTA_TRANSCRIPTS=all",
            _values(runs, all_transcripts),
            "emails/s",
            (_ratios(runs, all_transcripts, prebuilt), ceiling),
        ),
        _rate_row(
            "drain keeping all transcripts ÷ keeping none",
            [],
            "",
            (_ratios(runs, all_transcripts, no_transcripts), "none"),
            (TRANSCRIPTS_SHARE_OF_NONE, f"≥ {TRANSCRIPTS_SHARE_OF_NONE} × none"),
            by_ratio=True,
        ),
        _rate_row(
            "end to end: first POST → last sent",
            _values(runs, lambda r: r.end_to_end),
            "emails/s",
            (_ratios(runs, lambda r: r.end_to_end, healthz), "/healthz"),
            (E2E_SHARE_OF_HEALTHZ, f"≥ {E2E_SHARE_OF_HEALTHZ} × /healthz"),
            by_ratio=True,
        ),
        _rate_row(
            "ceiling: smtplib, prebuilt bytes",
            _values(runs, prebuilt),
            "emails/s",
        ),
        _rate_row("ceiling: smtplib, build + send", _values(runs, build), "emails/s"),
    ]
    return result + _memory_rows(runs, options, batch_missing)


def _webhooks_row(runs: Sequence[RunFigures]) -> list[Row]:
    """How long after the batch drain's last email its last webhook went (none: no webhook)."""
    values = _values(runs, lambda r: r.drain.webhooks_after if r.drain else None)
    if not values:
        return []
    label = "drain's webhooks: all delivered, after its last email"
    return [Row(label, _seconds(median(values)), _spread(values, _seconds), "—", "—", "—")]


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def _memory_rows(runs: Sequence[RunFigures], options: Options, batch_missing: bool) -> list[Row]:
    """Median over the runs of each role's highest RSS in the phases that matter for it."""
    server = "api: children" if options.api_workers > 1 else "api: main process"
    single = (ACCEPT, END_TO_END, SINGLES)
    delivering = (END_TO_END, DRAIN, SINGLES_DRAIN)
    supervisor = "api: main process"
    wanted = [
        (f"RSS {server}, single POSTs", server, single, True),
        (f"RSS {server}, after 500-item batches", server, (BATCH,), not batch_missing),
        ("RSS api: main process (supervisor)", supervisor, None, server != supervisor),
        ("RSS worker: children (pool), delivering", "worker: children", delivering, True),
        ("RSS worker: main process", "worker: main process", None, True),
        ("RSS scheduler", "scheduler: main process", None, True),
    ]
    result = []
    for label, role, phase_names, shown in wanted:
        limited = role != "scheduler: main process"
        if not shown:
            continue
        peaks = [run.memory.peak(role, phase_names) for run in runs]
        values = [peak / MB for peak in peaks if peak is not None]
        if not values:
            continue
        middle = median(values)
        result.append(
            Row(
                label,
                f"{middle:,.0f} MB",
                _spread(values),
                "—",
                f"≤ {RSS_LIMIT_MB:.0f} MB" if limited else "—",
                _verdict(middle <= RSS_LIMIT_MB if limited else None),
            )
        )
    return result


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| figure | median | runs (min – max) | ratio to ceiling | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    lines += [
        f"| {r.figure} | {r.median} | {r.spread} | {r.ratio} | {r.target} | {r.verdict} |"
        for r in rows
    ]
    return "\n".join(lines)
