"""The markdown written into docs/benchmarks.md: results plus what they were measured on."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

__all__ = ["ProbeResult", "environment_facts", "markdown_section", "write_section"]


@dataclass(frozen=True)
class ProbeResult:
    path: str
    status: int
    body: str


def _first_line(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (completed.stdout or completed.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / (1024 * 1024)
    return 0.0


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def environment_facts(generator: str, *, serve_env: Mapping[str, str]) -> dict[str, str]:
    """What a reader needs to compare a later run with this one."""
    facts = {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Machine": (
            f"{len(os.sched_getaffinity(0))} CPUs (nproc), {_memory_gib():.0f} GiB RAM, "
            f"{_cpu_model()}, {platform.system()} {platform.release()}"
        ),
        "Python": platform.python_version(),
        "Ray / Serve": version("ray"),
        "uvicorn / FastAPI": f"{version('uvicorn')} / {version('fastapi')}",
        "HAProxy": _first_line(["haproxy", "-v"]),
        "Load generator": (
            _first_line(["wrk", "-v"]) if generator == "wrk" else "bench/_load.py (httpx)"
        ),
    }
    if serve_env:
        facts["Extra Serve environment"] = " ".join(f"`{k}={v}`" for k, v in serve_env.items())
    return facts


def markdown_section(
    *,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    verdict: str,
    probes: Mapping[str, Sequence[ProbeResult]],
    facts: Mapping[str, str],
    argv: Sequence[str],
    route: str,
    duration_s: float,
    warmup_s: float,
    timeout_s: float,
) -> str:
    """Return the body of the "Gateway" section (without its heading)."""
    command = shlex.join([".venv/bin/python", "bench/gateway.py", *argv])
    lines = [
        f"Authenticated `GET {route}` (Bearer access token, SQLite) against the same FastAPI app "
        f"under bare uvicorn and behind Ray Serve (1 replica, the platform's default settings as "
        f"`make up` uses them, but for the per-address and per-user read limits, raised alike for "
        f"every target: one client sends thousands of reads a second; the limiter still runs), on "
        f"loopback. Closed loop: each connection sends its next request "
        f"when the previous answer arrives; {duration_s:g} s per row after a {warmup_s:g} s warm-up "
        f"per target; an answer slower than {timeout_s:g} s counts as a timeout. The load "
        f"generator shares the machine's cores with the server.",
        "",
        f"Command: `{command}`",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        verdict,
        "",
        "Probes (status codes):",
        "",
        *(
            f"- {target}: " + ", ".join(f"`{p.path}` {p.status}" for p in results)
            for target, results in probes.items()
        ),
        "",
        *(f"- {name}: {value}" for name, value in facts.items()),
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, title: str, body: str) -> None:
    """Replace the ``## {title}`` section of ``path`` (or append it), keeping the others."""
    heading = f"## {title}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        before, after = lines, []
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        before, after = lines[:start], lines[end:]
    while before and not before[-1].strip():
        before.pop()
    section = [heading, "", *body.rstrip("\n").splitlines()]
    merged = [*before, "", *section, *(["", *after] if after else [])]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(merged).lstrip("\n") + "\n")
