"""Closed-loop HTTP load from a separate process: ``wrk`` when installed, else a Python fallback.

The load generator must not share a process (or an event loop) with what it measures, so both
paths run as child processes and report one JSON object. ``python bench/_load.py URL ...`` is the
fallback generator itself (httpx over asyncio, one task per connection).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LoadResult", "generator_name", "run_load"]

# wrk calls done() once at the end; latencies are in microseconds. Requests that timed out are
# counted in errors.timeout and are absent from the latency distribution.
_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "status_errors": %d, ' ..
    '"socket_errors": %d, "timeouts": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write, e.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    connections: int
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    # Answers that were not 2xx/3xx, plus connect/read/write failures.
    errors: int
    timeouts: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def generator_name(preference: str) -> str:
    """Return ``"wrk"`` or ``"python"`` for ``preference`` in auto/wrk/python."""
    if preference == "python" or (preference == "auto" and shutil.which("wrk") is None):
        return "python"
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    return "wrk"


def run_load(
    url: str,
    *,
    token: str,
    connections: int,
    duration_s: float,
    timeout_s: float,
    generator: str,
) -> LoadResult:
    """Drive ``GET url`` with ``connections`` keep-alive connections for ``duration_s``."""
    if generator == "wrk":
        report = _run_wrk(url, token, connections, duration_s, timeout_s)
    else:
        command = [
            sys.executable, __file__, url, "--connections", str(connections),
            "--duration-s", str(duration_s), "--timeout-s", str(timeout_s),
        ]  # fmt: skip
        report = _run_json(command, duration_s, env_token=token)
    return LoadResult(
        connections=connections,
        requests=int(report["requests"]),
        duration_s=report["duration_us"] / 1e6,
        p50_ms=report["p50_us"] / 1e3,
        p99_ms=report["p99_us"] / 1e3,
        errors=int(report["status_errors"] + report["socket_errors"]),
        timeouts=int(report["timeouts"]),
    )


def _run_wrk(
    url: str, token: str, connections: int, duration_s: float, timeout_s: float
) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_REPORT)
    try:
        command = [
            "wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s",
            "-s", script.name, "-H", f"Authorization: Bearer {token}", url,
        ]  # fmt: skip
        return _run_json(command, duration_s)
    finally:
        Path(script.name).unlink(missing_ok=True)


def _run_json(
    command: list[str], duration_s: float, env_token: str | None = None
) -> dict[str, float]:
    env = dict(os.environ)
    if env_token is not None:
        env["BENCH_TOKEN"] = env_token
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 30, env=env, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {completed.stderr.strip()[-500:]}")
    last = completed.stdout.strip().splitlines()[-1]
    report: dict[str, float] = json.loads(last)
    return report


async def _python_load(
    url: str, token: str, connections: int, duration_s: float, timeout_s: float
) -> dict[str, float]:
    import httpx

    latencies_s: list[float] = []
    counts = {"status_errors": 0, "socket_errors": 0, "timeouts": 0}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s, headers=headers) as client:
        started = time.perf_counter()
        deadline = started + duration_s

        async def connection() -> None:
            while (now := time.perf_counter()) < deadline:
                try:
                    response = await client.get(url)
                except httpx.TimeoutException:
                    counts["timeouts"] += 1
                    continue
                except httpx.HTTPError:
                    counts["socket_errors"] += 1
                    continue
                latencies_s.append(time.perf_counter() - now)
                if response.status_code >= 400:
                    counts["status_errors"] += 1

        await asyncio.gather(*(connection() for _ in range(connections)))
        elapsed_s = time.perf_counter() - started
    latencies_s.sort()

    def percentile_us(fraction: float) -> float:
        if not latencies_s:
            return 0.0
        return latencies_s[min(len(latencies_s) - 1, int(fraction * len(latencies_s)))] * 1e6

    done = len(latencies_s) + counts["timeouts"] + counts["socket_errors"]
    return {
        "requests": done,
        "duration_us": elapsed_s * 1e6,
        "p50_us": percentile_us(0.50),
        "p99_us": percentile_us(0.99),
        **counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--duration-s", type=float, required=True)
    parser.add_argument("--timeout-s", type=float, default=2.0)
    args = parser.parse_args()
    report = asyncio.run(
        _python_load(
            args.url, os.environ["BENCH_TOKEN"], args.connections, args.duration_s, args.timeout_s
        )
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
