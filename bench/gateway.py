"""Gateway throughput: the same FastAPI app under bare uvicorn and behind Ray Serve.

    .venv/bin/python bench/gateway.py [--duration-s 8] [--connections 1,8,32] [--output docs/benchmarks.md]

Each target runs in a child process on a free loopback port with a fresh SQLite database; a user
registers and signs in, and a separate load generator (``wrk``, else a Python one) drives
``GET /api/auth/me`` with the access token at each connection count after a warm-up. The table
is printed and written into the "Gateway" section of ``--output`` (``-`` to skip writing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

# The repository first: this folder's sandbox.py must not shadow the `sandbox` package.
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _load import LoadResult, generator_name, run_load
from _report import ProbeResult, environment_facts, markdown_section, write_section
from _targets import TARGETS, running_target

ROUTE = "/api/auth/me"
# One client address and one user send thousands of reads a second: far past the per-address and
# per-user read limits (the limiter would answer 429). The limits are raised for every target
# alike; the limiter still runs (and costs) on every request.
APP_ENV = {
    "VIBECODE_GATEWAY__RATE_LIMITS__PER_IP": json.dumps(
        {"auth": 30, "read": 10_000_000, "write": 240, "ai": 60}
    ),
    "VIBECODE_GATEWAY__RATE_LIMITS__PER_USER": json.dumps(
        {"auth": 30, "read": 10_000_000, "write": 600, "ai": 120}
    ),
}
TARGET_SHARE = 0.35  # Serve's throughput as a share of bare uvicorn's, at 8 and 32 connections
console = Console()


@dataclass
class TargetRun:
    name: str
    probes: list[ProbeResult] = field(default_factory=list)
    loads: dict[int, LoadResult] = field(default_factory=dict)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration-s", type=float, default=8.0, help="per connection count")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="per target, not measured")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated counts")
    parser.add_argument("--timeout-s", type=float, default=2.0, help="a slower answer is a timeout")
    parser.add_argument(
        "--targets",
        default="uvicorn,serve-haproxy,serve-proxy",
        help=f"comma-separated, from: {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--serve-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the Serve targets, e.g. RAY_SERVE_HAPROXY_NBTHREAD=2",
    )
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--output", default="docs/benchmarks.md", help="'-' to print only")
    args = parser.parse_args(argv)
    args.connections = [int(part) for part in args.connections.split(",") if part.strip()]
    args.targets = [part.strip() for part in args.targets.split(",") if part.strip()]
    unknown = [name for name in args.targets if name not in TARGETS]
    if unknown or "uvicorn" not in args.targets:
        parser.error(f"--targets must include uvicorn and only: {', '.join(TARGETS)}")
    if any("=" not in pair for pair in args.serve_env):
        parser.error("--serve-env takes NAME=VALUE")
    args.serve_env = dict(pair.split("=", 1) for pair in args.serve_env)
    return args


def _sign_in(base_url: str) -> str:
    """Register and sign in a user; return an access token that ``ROUTE`` accepts."""
    creds = {"email": "bench@example.com", "password": "correct horse battery staple"}
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        http.post("/api/auth/register", json=creds).raise_for_status()
        login = http.post("/api/auth/login", json=creds)
        login.raise_for_status()
        token: str = login.json()["access_token"]
        me = http.get(ROUTE, headers={"Authorization": f"Bearer {token}"})
        me.raise_for_status()
    return token


def _probe(base_url: str) -> list[ProbeResult]:
    results = []
    with httpx.Client(base_url=base_url, timeout=10.0) as http:
        for path in ("/healthz", "/readyz"):
            response = http.get(path)
            results.append(ProbeResult(path=path, status=response.status_code, body=response.text))
    return results


def _measure(name: str, args: argparse.Namespace, generator: str) -> TargetRun:
    run = TargetRun(name=name)
    started = time.monotonic()
    with running_target(name, serve_env={**APP_ENV, **args.serve_env}) as target:
        console.print(f"[bold]{TARGETS[name]}[/bold] up in {time.monotonic() - started:.1f}s")
        token = _sign_in(target.base_url)
        run.probes = _probe(target.base_url)
        url = f"{target.base_url}{ROUTE}"
        load = {"token": token, "timeout_s": args.timeout_s, "generator": generator}
        run_load(url, connections=max(args.connections), duration_s=args.warmup_s, **load)
        for connections in args.connections:
            result = run_load(url, connections=connections, duration_s=args.duration_s, **load)
            run.loads[connections] = result
            console.print(
                f"  {connections:>3} conns: {result.requests_per_s:8.0f} req/s  "
                f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                f"errors {result.errors}  timeouts {result.timeouts}"
            )
        stopping = time.monotonic()
    console.print(f"  stopped in {time.monotonic() - stopping:.1f}s")
    return run


def _rows(runs: list[TargetRun]) -> list[list[str]]:
    baseline = runs[0].loads
    rows = []
    for run in runs:
        for connections, result in run.loads.items():
            base = baseline[connections].requests_per_s
            share = f"{100 * result.requests_per_s / base:.0f}%" if base else "n/a"
            rows.append(
                [
                    TARGETS[run.name],
                    str(connections),
                    f"{result.requests_per_s:,.0f}",
                    f"{result.p50_ms:.2f}",
                    f"{result.p99_ms:.2f}",
                    str(result.errors),
                    str(result.timeouts),
                    "—" if run.name == "uvicorn" else share,
                ]
            )
    return rows


HEADERS = ["Target", "Conns", "Req/s", "p50 ms", "p99 ms", "Errors", "Timeouts", "% of uvicorn"]


def _verdict(runs: list[TargetRun]) -> str:
    serve = next((run for run in runs if run.name == "serve-haproxy"), None)
    if serve is None:
        return "The default Serve target (HAProxy) was not measured."
    baseline = runs[0].loads
    checked = [c for c in (8, 32) if c in serve.loads]
    if not checked:
        return "Neither 8 nor 32 connections was measured; no verdict."
    failures = []
    for connections in checked:
        result = serve.loads[connections]
        share = result.requests_per_s / baseline[connections].requests_per_s
        if share < TARGET_SHARE:
            failures.append(f"{share:.0%} of uvicorn at {connections} connections")
        if result.errors or result.timeouts:
            failures.append(f"{result.errors} errors, {result.timeouts} timeouts at {connections}")
    target = f"≥{TARGET_SHARE:.0%} of bare uvicorn's throughput at 8 and 32 connections, no errors"
    if failures:
        return f"**Below target** ({target}): " + "; ".join(failures) + "."
    return f"**Meets target** ({target})."


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    generator = generator_name(args.load)
    console.print(f"load generator: {generator}; route: GET {ROUTE}")
    order = ["uvicorn", *(name for name in args.targets if name != "uvicorn")]
    runs = [_measure(name, args, generator) for name in order]

    table = Table(title=f"GET {ROUTE}, {args.duration_s:g}s per row ({generator})")
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "Target" else "right")
    for row in _rows(runs):
        table.add_row(*row)
    console.print(table)
    verdict = _verdict(runs)
    console.print(verdict)
    probes = {TARGETS[run.name]: run.probes for run in runs}
    for target_name, results in probes.items():
        summary = ", ".join(f"{probe.path} {probe.status}" for probe in results)
        console.print(f"probes via {target_name}: {summary}")
    if args.output != "-":
        section = markdown_section(
            headers=HEADERS,
            rows=_rows(runs),
            verdict=verdict,
            probes=probes,
            facts=environment_facts(generator, serve_env=args.serve_env),
            argv=sys.argv[1:] if argv is None else argv,
            route=ROUTE,
            duration_s=args.duration_s,
            warmup_s=args.warmup_s,
            timeout_s=args.timeout_s,
        )
        write_section(Path(args.output), "Gateway", section)
        console.print(f"wrote the Gateway section of {args.output}")


if __name__ == "__main__":
    main()
