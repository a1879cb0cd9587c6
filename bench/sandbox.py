"""Sandbox latency beside a plain subprocess baseline, in the same run.

Rows: a plain ``subprocess.run(["true"])`` and asyncio subprocess (the baselines, measured
interleaved with the warm-sandbox commands so both see the same machine); cold create -> first
command (with the backend's default of one prepared launch chain, and with none); warm-pool
lease (attach a workspace to a pre-created sandbox) -> first command; a command in a warm
sandbox; bursts of 20 concurrent leases. Prints p50/p95/p99 and rewrites the "Sandboxes"
section of docs/benchmarks.md. Needs root (bubblewrap backend).

    .venv/bin/python bench/sandbox.py [--samples 40] [--output docs/benchmarks.md|-]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._report import write_section
from sandbox import BubblewrapSettings, ExecRequest, SandboxSpec
from sandbox.bubblewrap import BubblewrapBackend, unavailable_reason

TRUE = ExecRequest(argv=("true",))
BURST = 20
COLD = "cold create -> first command"
COLD_UNPREPARED = "cold create -> first command, no prepared launch"


def percentiles(samples_s: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples_s)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return cut[49] * 1000, cut[94] * 1000, cut[98] * 1000


async def timed(samples: int, step: Callable[[], Awaitable[None]]) -> list[float]:
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        await step()
        out.append(time.perf_counter() - started)
    return out


async def cold_creates(backend: BubblewrapBackend, samples: int) -> list[float]:
    cold: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        info = await backend.create(SandboxSpec())
        await backend.exec(info.sandbox_id, TRUE)
        cold.append(time.perf_counter() - started)
        await backend.destroy(info.sandbox_id)
    return cold


async def plain_async() -> None:
    process = await asyncio.create_subprocess_exec("true")
    await process.wait()


async def measure(samples: int, scratch: Path) -> dict[str, list[float]]:
    settings = BubblewrapSettings(state_dir=scratch / "state", cgroup_name="vibecode-bench")
    results: dict[str, list[float]] = {
        "plain subprocess.run(true)": [],
        "plain asyncio subprocess (true)": [],
    }
    async with BubblewrapBackend(settings) as backend:
        results[COLD] = await cold_creates(backend, samples)
    unprepared = settings.model_copy(update={"prepared_launches": 0})
    async with BubblewrapBackend(unprepared) as backend:
        results[COLD_UNPREPARED] = await cold_creates(backend, samples)
    async with BubblewrapBackend(settings) as backend:
        workspaces = [scratch / f"ws{n}" for n in range(BURST)]
        for workspace in workspaces:
            workspace.mkdir()
            (workspace / "app.py").write_text("print('hi')\n")
        pool = [(await backend.create(SandboxSpec())).sandbox_id for _ in range(BURST)]

        async def lease(sandbox_id: str, workspace: Path) -> float:
            started = time.perf_counter()
            await backend.attach_workspace(sandbox_id, workspace)
            await backend.exec(sandbox_id, TRUE)
            return time.perf_counter() - started

        warm_lease = []
        for n in range(samples):
            warm_lease.append(await lease(pool[n % BURST], workspaces[n % BURST]))
            await backend.reset(pool[n % BURST])  # The pool's release, outside the timing.
        results["warm-pool lease -> first command"] = warm_lease

        await backend.attach_workspace(pool[0], workspaces[0])
        warm = []
        for _ in range(samples * 5):  # Interleaved: baselines and sandbox share the machine.
            results["plain subprocess.run(true)"].append(
                _time(lambda: subprocess.run(["true"], check=True))
            )
            results["plain asyncio subprocess (true)"] += await timed(1, plain_async)
            warm += await timed(1, lambda: _exec(backend, pool[0]))
        results["command in a warm sandbox (true)"] = warm
        await backend.reset(pool[0])

        bursts: list[float] = []
        for _ in range(3):
            bursts += await asyncio.gather(
                *(lease(s, w) for s, w in zip(pool, workspaces, strict=True))
            )
            await asyncio.gather(*(backend.reset(s) for s in pool))
        results[f"burst of {BURST} concurrent leases (each)"] = bursts
    return results


async def _exec(backend: BubblewrapBackend, sandbox_id: str) -> None:
    await backend.exec(sandbox_id, TRUE)


def _time(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return time.perf_counter() - started


def table(results: dict[str, list[float]]) -> list[str]:
    lines = ["| Measurement | n | p50 ms | p95 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for name, samples in results.items():
        p50, p95, p99 = percentiles(samples)
        lines.append(f"| {name} | {len(samples)} | {p50:.2f} | {p95:.2f} | {p99:.2f} |")
    return lines


def verdicts(results: dict[str, list[float]]) -> list[str]:
    cold = percentiles(results[COLD])
    unprepared = percentiles(results[COLD_UNPREPARED])
    lease = percentiles(results["warm-pool lease -> first command"])
    warm = percentiles(results["command in a warm sandbox (true)"])
    plain = percentiles(results["plain subprocess.run(true)"])
    checks = [
        (f"warm lease -> first `true` p50 {lease[0]:.1f} ms (< 10), p99 {lease[2]:.1f} ms (< 50)",
         lease[0] < 10 and lease[2] < 50),
        (f"warm command p50 {warm[0]:.2f} ms = {warm[0] / plain[0]:.2f}x plain subprocess "
         f"{plain[0]:.2f} ms (target <= 1.5x)", warm[0] <= 1.5 * plain[0]),
        (f"cold create -> first command p50 {cold[0]:.1f} ms (< 60); with no prepared launch "
         f"{unprepared[0]:.1f} ms", cold[0] < 60),
    ]  # fmt: skip
    return [f"- {'**meets**' if ok else '**misses**'}: {text}" for text, ok in checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--output", default="docs/benchmarks.md")
    args = parser.parse_args()
    reason = unavailable_reason(BubblewrapSettings())
    if reason:
        sys.exit(f"bench/sandbox.py: bubblewrap unavailable: {reason}")
    scratch = Path(tempfile.mkdtemp(prefix="vibecode-bench-"))
    scratch.chmod(0o711)
    try:
        started = time.monotonic()
        results = asyncio.run(measure(args.samples, scratch))
        elapsed = time.monotonic() - started
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for root in (
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/pids",
            "/sys/fs/cgroup/cpu",
        ):
            with contextlib.suppress(OSError):
                Path(root, "vibecode-bench").rmdir()
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.strip()
    body = "\n".join(
        [
            "Bubblewrap backend, hardened as in `docs/sandbox.md` (setpriv to uid 64000, all "
            "namespaces, seccomp, cgroup limits), measured beside a plain subprocess in the same "
            "run; the baselines are timed interleaved with the warm-sandbox commands (one of "
            "each in turn), so both see the same load. Cold create is a new bwrap and supervisor "
            "up to the first `true`, with the backend's default of one prepared launch chain "
            "(cgroups entered and the root launcher shell waiting, readied in the background "
            "after the previous create) and with none. A warm-pool lease is `attach_workspace` "
            "(chown walk of a 1-file workspace + a bind mount that propagates into the running "
            "sandbox) plus the first `exec`; the pool's release (`reset`) is outside the "
            "timing. Bursts: 20 leases at once on 20 pre-created sandboxes, 3 bursts.",
            "",
            f"Command: `.venv/bin/python bench/sandbox.py --samples {args.samples}` "
            f"({elapsed:.0f} s)",
            "",
            *table(results),
            "",
            *verdicts(results),
            "",
            "Published create-to-first-command medians (third-party measurements): Daytona "
            "0.11 s (p95 0.28 s), E2B 0.44 s (p95 0.85 s).",
            "",
            f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"- Machine: {len(__import__('os').sched_getaffinity(0))} CPUs, "
            f"{platform.system()} {platform.release()}, cgroups: {_mode()}",
            f"- {bwrap}, Python {platform.python_version()} (host), /usr/bin/python3 (sandbox)",
        ]
    )
    print(body)
    if args.output != "-":
        write_section(Path(args.output), "Sandboxes", body)


def _mode() -> str:
    from sandbox.cgroups import detect_mode

    return detect_mode()


if __name__ == "__main__":
    main()
