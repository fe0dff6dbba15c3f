"""The webhook pool's CPU share: nothing waits on an idle host; on a busy one the pool keeps
to SHARE of a CPU, and no sender waits longer than MAX_WAIT_SECONDS."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from worker import cpu_share
from worker.cpu_share import CpuShare

CPUS = 2


class Host:
    """A simulated two-CPU host: other processes use `others` CPUs, the pool what it runs."""

    def __init__(self, others: float | None) -> None:
        self.others = others
        self.now = 0.0
        self.own = 0.0
        self.busy = 0.0
        self.slept = 0.0

    def advance(self, seconds: float, *, pool_cpu: float = 0.0) -> None:
        self.now += seconds
        self.own += pool_cpu
        self.busy += (self.others or 0.0) * seconds + pool_cpu

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.advance(seconds)

    def read_host(self) -> tuple[float, float] | None:
        if self.others is None:
            return None
        return self.busy, CPUS * self.now

    def share(self) -> CpuShare:
        return CpuShare(
            read_host=self.read_host,
            read_own=lambda: self.own,
            clock=lambda: self.now,
            sleep=self.sleep,
        )


def run_sender(host: Host, share: CpuShare, *, seconds: float, request_cpu: float) -> float:
    """A sender that runs on the CPU only (a fast endpoint): the pool's CPUs used."""
    started, own = host.now, host.own
    while host.now - started < seconds:
        share.wait_turn()
        host.advance(request_cpu, pool_cpu=request_cpu)
    return (host.own - own) / (host.now - started)


@pytest.mark.parametrize("others", [0.0, 0.5, 0.9])
def test_on_a_host_with_cpus_to_spare_nothing_waits(others: float) -> None:
    host = Host(others)
    share = host.share()
    assert run_sender(host, share, seconds=5, request_cpu=0.0003) == pytest.approx(1.0)
    assert host.slept == 0
    assert not share.busy


def test_beside_busy_cpus_the_pool_keeps_to_its_share() -> None:
    host = Host(others=1.6)
    share = host.share()
    used = run_sender(host, share, seconds=10, request_cpu=0.0003)
    assert share.busy
    assert cpu_share.SHARE * 0.8 <= used <= cpu_share.SHARE * 1.2


def test_once_the_host_is_free_again_the_pool_runs_at_full_speed() -> None:
    host = Host(others=1.8)
    share = host.share()
    run_sender(host, share, seconds=3, request_cpu=0.0003)
    host.others = 0.2
    run_sender(host, share, seconds=1, request_cpu=0.0003)  # the next readings see it
    slept = host.slept
    assert run_sender(host, share, seconds=3, request_cpu=0.0003) == pytest.approx(1.0)
    assert host.slept == slept


def test_no_sender_waits_longer_than_max_wait_for_its_turn() -> None:
    host = Host(others=1.8)
    share = host.share()
    run_sender(host, share, seconds=1, request_cpu=0.0003)
    # One long request puts the pool deep in debt: the next turn still comes in time.
    host.advance(2.0, pool_cpu=2.0)
    started = host.now
    share.wait_turn()
    assert 0 < host.now - started <= cpu_share.MAX_WAIT_SECONDS + 1e-9


def test_without_the_hosts_counters_nothing_waits() -> None:
    host = Host(others=None)
    share = host.share()
    assert run_sender(host, share, seconds=2, request_cpu=0.0003) == pytest.approx(1.0)
    assert host.slept == 0


def test_the_real_host_reads_busy_while_every_cpu_spins() -> None:
    busy, total = cpu_share.host_seconds() or (0.0, 0.0)
    assert 0 < busy < total
    share = CpuShare()
    cpus = os.cpu_count() or 1  # /proc/stat counts them all
    spin = "import time\nend = time.monotonic() + 5\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(cpus)]
    try:
        time.sleep(0.5)
        readings = []
        for _ in range(5):
            time.sleep(cpu_share.SAMPLE_SECONDS)
            share.wait_turn()
            readings.append(share.busy)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert any(readings), "every CPU spinning is a busy host"


def test_the_pools_start_waits_for_a_quiet_host_at_most_its_limit() -> None:
    busy = Host(others=1.8)
    busy.share().wait_for_quiet(cpu_share.START_WAIT_SECONDS)
    assert busy.slept == pytest.approx(cpu_share.START_WAIT_SECONDS)
    quiet = Host(others=0.3)
    quiet.share().wait_for_quiet(cpu_share.START_WAIT_SECONDS)
    assert quiet.slept == pytest.approx(cpu_share.SAMPLE_SECONDS)


def test_a_stop_ends_the_wait_for_a_quiet_host() -> None:
    host = Host(others=1.8)
    waits: list[float] = []

    def stopped(seconds: float) -> bool:
        waits.append(seconds)
        return True  # as the stopping Event's wait() answers once it is set

    CpuShare(read_host=host.read_host, read_own=lambda: 0.0, sleep=stopped).wait_for_quiet(10)
    assert waits == [cpu_share.SAMPLE_SECONDS]
