"""Prometheus plumbing every process shares: one metrics directory per process group, and
the scrape that adds up what each of its processes counted.

Each process group counts what it does and answers for it: `pochta api` (with all of its
`--workers`) on `/metrics`, `pochta worker` (with all of its pool processes) on
POCHTA_WORKER_METRICS_PORT. The metrics themselves live beside what they count:
app/api/metrics.py and worker/metrics.py. docs/operations.md says why.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, disable_created_metrics, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# A `_created` twin of every counter doubles the series for nothing Prometheus needs.
disable_created_metrics()  # type: ignore[no-untyped-call]


_PREFIX = "pochta-metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _remove_orphans() -> None:
    """Directories of groups whose main process is gone (killed, or ended by a signal)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*-*-*"):
        pid = path.name.removeprefix(_PREFIX).split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def use_private_multiprocess_dir(group: str) -> str:
    """Count in a fresh directory shared by this process and the ones it forks or spawns.

    Call in the parent before any metric exists and before children start: they inherit
    the variable and each writes its own files there; a scrape adds them up. The directory
    is new each start (stale files of an earlier run would add to this one's counts) and
    private to one group (two groups in one directory, or containers sharing one, could
    reuse a pid and write the same file). It goes at exit, or, when a signal ended the
    group, at the next start of any group.
    """
    owner = os.getpid()
    _remove_orphans()
    path = tempfile.mkdtemp(prefix=f"{_PREFIX}{group}-{owner}-")
    os.environ[MULTIPROC_ENV] = path
    # prometheus_client picks its value class on import; pick again now the variable is set.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

    def _remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(_remove)
    return path


def is_multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class _ThisProcess(Collector):
    """The default registry's metrics, for a process that counts alone."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for one scrape: every process of the group, plus collectors computed now."""
    registry = CollectorRegistry()
    if is_multiprocess():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    for collector in extra:
        registry.register(collector)
    return registry
