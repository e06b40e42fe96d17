"""Where a timed run's CPU went, machine-wide, per thread from /proc/*/task/*/schedstat: this process (all its threads,
librdkafka's included), the Postgres server, the broker, moto, and everything else (kernel writeback, others).

A ratio like "relay / raw producer" only means something next to how busy the machine was: when the raw producer
already keeps every core busy, a run that needs more CPU per message cannot reach a given fraction of it however it
is arranged. So the benches print, beside each ratio, the CPU per message of both sides and the ceiling that follows:
`cores / cpu per message`.
"""

import os
import time
from dataclasses import dataclass

CORES = os.cpu_count() or 1
TICK = os.sysconf("SC_CLK_TCK")
# Process names (comm) per group; a process in none of them counts as "other".
GROUPS = {"postgres": {"postgres"}, "broker": {"noida-db", "tansu"}, "moto": {"moto_server"}}


def _group_of(pid: str, me: str) -> str:
    if pid == me:
        return "this process"
    try:
        with open(f"/proc/{pid}/comm") as f:
            name = f.read().strip()
    except OSError:
        return "other"
    for group, names in GROUPS.items():
        if name in names or (group == "moto" and name.startswith("moto")):
            return group
    return "other"


def _processes() -> dict[str, tuple[str, float, float]]:
    """Every process: pid -> (group, CPU seconds summed over its threads, and by its own counters). Threads are read
    from schedstat (nanoseconds, where /proc/stat's 10 ms ticks are too coarse for a run of a few tens of
    milliseconds); a process's own utime + stime still count threads that have ended (moto serves each request on a
    new one), so the larger of the two deltas is used."""
    me = str(os.getpid())
    processes = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            threads = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    threads += int(f.read().split()[0])
        except OSError:  # it ended while we looked
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = (int(fields[11]) + int(fields[12])) / TICK
        processes[pid] = (_group_of(pid, me), threads / 1e9, ticks)
    return processes


@dataclass
class Usage:
    wall: float
    busy: float  # machine-wide CPU seconds (processes that ended during the run are not counted)
    groups: dict[str, float]  # including "other": the kernel's threads (writeback), other processes

    def per_message(self, n: int) -> float:
        """Machine-wide CPU microseconds per message."""
        return self.busy / n * 1e6

    def ceiling(self, n: int) -> float:
        """Messages/s this run could reach with every core busy on it and nothing else: cores / CPU per message."""
        return CORES * n / self.busy if self.busy else float("inf")

    def describe(self, n: int) -> str:
        parts = [f"{name} {used / n * 1e6:.1f}" for name, used in self.groups.items() if used >= 0.05e-6 * n]
        return (
            f"cpu {self.busy / self.wall:.2f} of {CORES} cores busy; µs per message: {self.per_message(n):.1f} "
            f"({', '.join(parts)})"
        )


class Meter:
    """`with Meter() as m: ...` then `m.usage` — CPU used across the machine while the block ran."""

    def __enter__(self):
        self._processes = _processes()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self._started
        groups = dict.fromkeys(["this process", *GROUPS, "other"], 0.0)
        for pid, (group, threads, ticks) in _processes().items():
            _, threads_before, ticks_before = self._processes.get(pid, (group, 0.0, 0.0))
            groups[group] += max(threads - threads_before, ticks - ticks_before)
        self.usage = Usage(wall, sum(groups.values()), groups)
        return False
