"""What one run measures, and the process memory seen while it ran."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from bench.httpload import Tally
from bench.procs import rss_bytes

# The phases of a run, as memory samples are filed.
HEALTHZ = "healthz"
ACCEPT = "accept"
END_TO_END = "end to end"
BATCH = "batch"
DRAIN = "drain"
SINGLES = "single POSTs queued"
SINGLES_DRAIN = "drain of single POSTs"


@dataclass(frozen=True, slots=True)
class LoadFigure:
    """Requests per second and latency of one timed load, and what it cost the generator."""

    per_second: float
    p50: float  # seconds
    p99: float  # seconds
    generator_cpu: float  # share of one core the load generator used
    failures: int  # answers that were not 2xx, and broken connections

    @classmethod
    def of(cls, tally: Tally, duration: float) -> LoadFigure:
        summary = tally.summary()
        bad = sum(n for status, n in tally.statuses.items() if not 200 <= status < 300)
        return cls(
            per_second=tally.per_second,
            p50=summary.p50,
            p99=summary.p99,
            generator_cpu=tally.cpu_seconds / duration,
            failures=bad + len(tally.errors),
        )


@dataclass(frozen=True, slots=True)
class DrainFigure:
    """How fast the workers emptied a queue: from their first attempt, and from their start."""

    steady: float  # emails/s, first attempt started -> last attempt finished
    from_start: float  # emails/s, worker process started -> last attempt finished
    # Seconds from the last attempt until every event was delivered to the endpoint (None:
    # no webhook subscribed). The pool runs at idle priority: webhooks follow email.
    webhooks_after: float | None = None


@dataclass(slots=True)
class MemoryPeaks:
    """The highest VmRSS seen per (role, phase); a role is a group's main process or children."""

    peaks: dict[tuple[str, str], int] = field(default_factory=dict)

    def sample(self, groups: dict[str, list[int]], phase: str) -> None:
        """Read VmRSS of each group's main process and of its descendants."""
        for name, pids in groups.items():
            for index, pid in enumerate(pids):
                rss = rss_bytes(pid)
                if rss is None:
                    continue
                key = (f"{name}: main process" if index == 0 else f"{name}: children", phase)
                self.peaks[key] = max(self.peaks.get(key, 0), rss)

    def peak(self, role: str, phases: Collection[str] | None = None) -> int | None:
        """The highest RSS of role over the phases (all when None); None if never seen."""
        seen = [
            rss
            for (r, phase), rss in self.peaks.items()
            if r == role and (phases is None or phase in phases)
        ]
        return max(seen) if seen else None


@dataclass(slots=True)
class RunFigures:
    """Every figure of one run; None where the phase could not be measured."""

    healthz: LoadFigure | None = None
    accept: LoadFigure | None = None
    batch: float | None = None  # emails/s
    drain: DrainFigure | None = None
    drain_singles: DrainFigure | None = None  # a backlog that arrived as single POSTs
    drain_no_transcripts: DrainFigure | None = None  # POCHTA_TRANSCRIPTS=none
    drain_all_transcripts: DrainFigure | None = None  # POCHTA_TRANSCRIPTS=all
    end_to_end: float | None = None  # emails/s
    smtplib_prebuilt: float | None = None  # emails/s
    smtplib_build: float | None = None  # emails/s
    memory: MemoryPeaks = field(default_factory=MemoryPeaks)
