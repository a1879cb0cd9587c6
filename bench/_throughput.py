"""Run a bounded number of file operations with N concurrent writers; keep every latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["OpStats", "percentile_ms", "run_ops"]


def percentile_ms(latencies_s: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile in milliseconds (0.0 for no samples)."""
    if not latencies_s:
        return 0.0
    ordered = sorted(latencies_s)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1e3


@dataclass(frozen=True)
class OpStats:
    path: str
    size_label: str
    op: str
    writers: int
    files: int
    bytes: int
    elapsed_s: float
    latencies_s: tuple[float, ...]

    @property
    def files_per_s(self) -> float:
        return self.files / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / (1 << 20) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile_ms(self.latencies_s, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile_ms(self.latencies_s, 0.99)


async def run_ops(
    operation: Callable[[int, int], Awaitable[int]],
    *,
    count: int,
    writers: int,
) -> tuple[float, list[float], int]:
    """Run ``operation(worker, index)`` for ``index`` in ``range(count)`` on ``writers`` tasks.

    Worker ``k`` takes indices ``k, k + writers, ...`` in order (a static split, so each worker
    can own one workspace). Each operation returns the bytes it moved. Returns the wall time,
    every latency (seconds) and the total bytes.
    """
    latencies_s: list[float] = []
    moved = [0] * writers

    async def worker(k: int) -> None:
        for index in range(k, count, writers):
            started = time.perf_counter()
            moved[k] += await operation(k, index)
            latencies_s.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(writers)))
    return time.perf_counter() - started, latencies_s, sum(moved)
