"""What ``/proc`` says about one process: resident memory and CPU time consumed so far."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "pss_kib", "rss_kib", "tick_s"]

_CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size (``VmRSS``) of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def pss_kib(pid: int) -> int:
    """Proportional set size of ``pid`` in KiB (shared pages split among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/smaps_rollup has no Pss")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of ``pid`` (resolution: one clock tick)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces: count fields after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    user_ticks, system_ticks = int(fields[11]), int(fields[12])
    return (user_ticks + system_ticks) / _CLOCK_TICKS_PER_S


def tick_s() -> float:
    """The resolution of ``cpu_seconds``."""
    return 1.0 / _CLOCK_TICKS_PER_S
