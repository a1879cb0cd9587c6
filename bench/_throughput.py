"""Run file operations of several kinds interleaved on N concurrent writers; keep every latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = ["OpStats", "Timed", "percentile_ms", "run_interleaved"]


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


@dataclass(frozen=True)
class Timed:
    """One operation's share of an interleaved run."""

    busy_s: float  # the slowest worker's sum of this operation's latencies
    latencies_s: list[float]
    bytes: int


async def run_interleaved(
    operations: Sequence[Callable[[int, int], Awaitable[int]]],
    *,
    count: int,
    writers: int,
) -> list[Timed]:
    """Run each ``operation(worker, index)`` for ``index`` in ``range(count)``, interleaved.

    Worker ``k`` of ``writers`` takes indices ``k, k + writers, ...`` in order (a static split, so
    each worker can own one workspace) and for each index runs every operation once, one after
    another, each timed on its own. The order rotates by one at each index, and workers start at
    different places in it, so no operation always goes first and all of them see the same load.
    Each operation returns the bytes it moved.

    Returns one ``Timed`` per operation, in the order given. Its ``busy_s`` stands in for the
    wall time of running that operation alone: per worker, the sum of that operation's
    latencies; the slowest worker's sum.
    """
    kinds = len(operations)
    latencies_s: list[list[float]] = [[] for _ in operations]
    busy_s = [[0.0] * writers for _ in operations]
    moved = [[0] * writers for _ in operations]  # per worker: `+= await` races across tasks

    async def worker(k: int) -> None:
        for step, index in enumerate(range(k, count, writers)):
            first = (k + step) % kinds
            for which in (*range(first, kinds), *range(first)):
                started = time.perf_counter()
                moved[which][k] += await operations[which](k, index)
                took = time.perf_counter() - started
                latencies_s[which].append(took)
                busy_s[which][k] += took

    await asyncio.gather(*(worker(k) for k in range(writers)))
    return [Timed(max(busy_s[i]), latencies_s[i], sum(moved[i])) for i in range(kinds)]
