"""The coding agent's own cost per step, and how many runs at once one machine sustains.

    .venv/bin/python bench/agent.py [--quick] [--runs 30] [--concurrency 50] [--output ...]

The real agent (``bench/_agent_platform.py``: ``AgentHostCore`` + ``LocalWorkspaceWriter`` on
SQLite and local blobs, ``LLMRouter`` → ``LiteLLMBackend`` → litellm) drives scripted sessions
against the OpenAI-compatible fake model server (``bench/_fake_model.py``, a child process on
loopback) that answers at once. Sessions use file tools only (no ``run_command``), so no
sandbox time is in a step.

Part 1, one run at a time: a step is from one model call's start to the next one's (the last:
to the run's end); its overhead is the step minus its model call (timed around the router's
backend). Then the very same requests go straight to the server with ``litellm.acompletion``.
Part 2: N runs started at once, each on its own workspace (created before the clock starts:
creating a workspace is not part of a run), beside N concurrent chains of
direct litellm calls replaying their requests. Tables are printed and, unless ``--output -``,
written into the "Agent" section of ``docs/benchmarks.md``. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

# The repository root goes before the bench folder (which Python puts first for a script):
# otherwise bench/sandbox.py would shadow the platform's ``sandbox`` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _agent_platform import MODEL, Platform, TimedCall, agent_platform
from _fake_model import Session, running_model_server
from _report import environment_facts, write_section
from _throughput import percentile_ms

console = Console()

OVERHEAD_P50_TARGET_MS = 15.0
CONCURRENT_RUNS_TARGET = 50
CALC = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
TEST = "from pkg.calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
# One run of part 1: ten model calls, file tools only, then finish.
LONG_SESSION: list[tuple[str, dict[str, Any]]] = [
    ("write_file", {"path": "pkg/calc.py", "content": CALC}),
    ("read_file", {"path": "pkg/calc.py"}),
    ("list_files", {}),
    ("edit_file", {"path": "pkg/calc.py", "old_string": "a + b", "new_string": "b + a"}),
    ("search", {"query": "def add"}),
    ("read_file", {"path": "pkg/calc.py", "start_line": 1, "end_line": 2}),
    ("write_file", {"path": "tests/test_calc.py", "content": TEST}),
    ("list_files", {"path": "tests"}),
    ("read_file", {"path": "tests/test_calc.py"}),
    ("finish", {"summary": "Added pkg/calc.py and its test."}),
]
SHORT_SESSION = [LONG_SESSION[i] for i in (0, 1, 3, 2)] + [LONG_SESSION[-1]]


@dataclass(frozen=True)
class RunSample:
    status: str
    tool_errors: int
    started: float
    ended: float
    calls: tuple[TimedCall, ...]
    tools: tuple[str, ...]

    @property
    def duration_s(self) -> float:
        return self.ended - self.started

    @property
    def setup_s(self) -> float:
        return self.calls[0].started - self.started if self.calls else self.duration_s

    def steps(self) -> list[tuple[str, float, float]]:
        """(tool, step wall s, model call s) per model call."""
        ends = [c.started for c in self.calls[1:]] + [self.ended]
        return [
            (tool, end - call.started, call.duration_s)
            for tool, call, end in zip(self.tools, self.calls, ends, strict=False)
        ]


def _marker(kind: str, k: int) -> str:
    return f"[{kind} {k:04d}]"


def _sessions(runs: int, concurrency: int) -> list[Session]:
    return [
        *((_marker("w", k), LONG_SESSION) for k in range(2)),
        *((_marker("o", k), LONG_SESSION) for k in range(runs)),
        *((_marker("c", k), SHORT_SESSION) for k in range(concurrency)),
    ]


async def _one_run(
    platform: Platform, marker: str, tools: Sequence[str], workspace: str | None = None
) -> RunSample:
    from actors.agent import RunRequest

    workspace = workspace or await platform.new_workspace(marker)
    prompt = f"{marker} Write a small calc module with a test."
    started = time.perf_counter()
    run = await platform.client.start(
        RunRequest(workspace_id=workspace, user_id=platform.user_id, prompt=prompt, model=MODEL)
    )
    await platform.host.wait(run.run_id)
    ended = time.perf_counter()
    info = await platform.store.get(run.run_id)
    events = await platform.store.all_events(run.run_id)
    failed = sum(1 for e in events if e.kind == "observation" and not e.payload.get("ok"))
    calls = tuple(platform.backend.calls.get(run.run_id, ()))
    return RunSample(str(info.status), failed, started, ended, calls, tuple(tools))


async def _direct_calls(
    base_url: str, chains: list[list[list[dict[str, Any]]]]
) -> list[list[float]]:
    """Replay each chain's requests in order, the chains at once; return each call's seconds."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from actors.agent import TOOL_SPECS

    durations: list[list[float]] = [[] for _ in chains]

    async def chain(k: int, requests: list[list[dict[str, Any]]]) -> None:
        for messages in requests:
            started = time.perf_counter()
            await litellm.acompletion(
                model=f"openai/{MODEL}", api_base=base_url, api_key="sk-fake",
                messages=messages, tools=TOOL_SPECS, num_retries=0,
            )  # fmt: skip
            durations[k].append(time.perf_counter() - started)

    await asyncio.gather(*(chain(k, requests) for k, requests in enumerate(chains)))
    return durations


@dataclass(frozen=True)
class Phase:
    samples: list[RunSample]
    wall_s: float
    cpu_s: float
    direct_chain_s: list[list[float]]  # per chain, each call's seconds
    direct_wall_s: float
    direct_cpu_s: float
    crashed: int = 0

    @property
    def direct_call_s(self) -> list[float]:
        return [call for chain in self.direct_chain_s for call in chain]


async def _timed_direct(
    base_url: str, samples: list[RunSample], *, serial: bool
) -> tuple[list[list[float]], float, float]:
    chains = [[c.messages for c in s.calls] for s in samples]
    if serial:
        chains = [[messages for chain in chains for messages in chain]]
    cpu, wall = time.process_time(), time.perf_counter()
    durations = await _direct_calls(base_url, chains)
    return durations, time.perf_counter() - wall, time.process_time() - cpu


async def _measure(args: argparse.Namespace, scratch: Path) -> tuple[Phase, Phase]:
    tools = [name for name, _ in LONG_SESSION]
    short_tools = [name for name, _ in SHORT_SESSION]
    with running_model_server(_sessions(args.runs, args.concurrency)) as base_url:
        async with agent_platform(scratch / "data", base_url) as platform:
            console.print("warming up (litellm import, first runs, first direct calls)")
            warm = [await _one_run(platform, _marker("w", k), tools) for k in range(2)]
            await _timed_direct(base_url, warm, serial=True)

            console.print(f"[bold]part 1[/bold]: {args.runs} runs one at a time")
            cpu, wall = time.process_time(), time.perf_counter()
            samples = [await _one_run(platform, _marker("o", k), tools) for k in range(args.runs)]
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            direct = await _timed_direct(base_url, samples, serial=True)
            serial = Phase(samples, wall, cpu, *direct)

            console.print(f"[bold]part 2[/bold]: {args.concurrency} runs at once")
            # Their workspaces first: creating a workspace is not part of a run.
            markers = [_marker("c", k) for k in range(args.concurrency)]
            workspaces = [await platform.new_workspace(marker) for marker in markers]
            cpu, wall = time.process_time(), time.perf_counter()
            outcomes = await asyncio.gather(
                *(
                    _one_run(platform, marker, short_tools, workspace)
                    for marker, workspace in zip(markers, workspaces, strict=True)
                ),
                return_exceptions=True,
            )
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            done = [o for o in outcomes if isinstance(o, RunSample)]
            for problem in (o for o in outcomes if not isinstance(o, RunSample)):
                console.print(f"[red]run crashed[/red]: {problem!r}")
            direct = await _timed_direct(base_url, done, serial=False)
            concurrent = Phase(done, wall, cpu, *direct, crashed=len(outcomes) - len(done))
    return serial, concurrent


# --- report -----------------------------------------------------------------------------------


def _ms(samples: Sequence[float]) -> tuple[str, str, str]:
    mean = sum(samples) / len(samples) * 1e3 if samples else 0.0
    return (f"{percentile_ms(samples, 0.5):.2f}", f"{percentile_ms(samples, 0.99):.2f}",
            f"{mean:.2f}")  # fmt: skip


def _steps(phase: Phase) -> list[tuple[str, float, float]]:
    return [step for sample in phase.samples for step in sample.steps()]


STEP_HEADERS = ["Per step, one run at a time", "n", "p50 ms", "p99 ms", "mean ms"]


def _step_rows(phase: Phase) -> list[list[str]]:
    steps = _steps(phase)
    n = str(len(steps))
    overhead = [wall - model for _, wall, model in steps]
    cpu_agent = phase.cpu_s / max(1, len(steps)) * 1e3
    cpu_direct = phase.direct_cpu_s / max(1, len(phase.direct_call_s)) * 1e3
    return [
        ["agent step (model call start → next model call start)", n, *_ms([s[1] for s in steps])],
        ["model call inside the step (router backend: litellm Router + HTTP)", n,
         *_ms([s[2] for s in steps])],
        ["**orchestration overhead (step - its model call)**", n, *_ms(overhead)],
        ["direct `litellm.acompletion`, the same requests", str(len(phase.direct_call_s)),
         *_ms(phase.direct_call_s)],
        ["run start (request → first model call)", str(len(phase.samples)),
         *_ms([s.setup_s for s in phase.samples])],
        ["bench process CPU per step: agent / direct call", n,
         f"{cpu_agent:.2f} / {cpu_direct:.2f}", "", ""],
    ]  # fmt: skip


TOOL_HEADERS = ["Step's tool", "n", "overhead p50 ms", "overhead p99 ms", "mean ms"]


def _tool_rows(phase: Phase) -> list[list[str]]:
    by_tool: dict[str, list[float]] = {}
    for tool, wall, model in _steps(phase):
        by_tool.setdefault(tool, []).append(wall - model)
    return [[tool, str(len(v)), *_ms(v)] for tool, v in by_tool.items()]


LOAD_HEADERS = ["Concurrent", "runs", "succeeded", "errors", "total s", "run p50 s", "run p99 s",
                "steps/s", "step overhead p50 / p99 ms"]  # fmt: skip


def _load_rows(phase: Phase, requested: int) -> list[list[str]]:
    samples = phase.samples
    ok = sum(1 for s in samples if s.status == "succeeded" and s.tool_errors == 0)
    steps = _steps(phase)
    overhead = [wall - model for _, wall, model in steps]
    durations = [s.duration_s for s in samples]
    calls = len(phase.direct_call_s)
    per_chain = calls // max(1, len(samples))
    chain_s = [sum(chain) for chain in phase.direct_chain_s]
    return [
        [f"agent runs ({len(SHORT_SESSION)} steps each)", str(requested), str(ok),
         str(requested - ok), f"{phase.wall_s:.2f}", f"{percentile_ms(durations, 0.5) / 1e3:.2f}",
         f"{percentile_ms(durations, 0.99) / 1e3:.2f}", f"{len(steps) / phase.wall_s:.1f}",
         f"{percentile_ms(overhead, 0.5):.1f} / {percentile_ms(overhead, 0.99):.1f}"],
        [f"direct litellm chains ({per_chain} calls each)", str(len(samples)), str(len(samples)),
         "0", f"{phase.direct_wall_s:.2f}", f"{percentile_ms(chain_s, 0.5) / 1e3:.2f}",
         f"{percentile_ms(chain_s, 0.99) / 1e3:.2f}", f"{calls / phase.direct_wall_s:.1f}", "—"],
    ]  # fmt: skip


def _verdict(serial: Phase, concurrent: Phase, requested: int) -> str:
    overhead = [wall - model for _, wall, model in _steps(serial)]
    p50 = percentile_ms(overhead, 0.5)
    ok = sum(1 for s in concurrent.samples if s.status == "succeeded" and s.tool_errors == 0)
    checks = [
        (p50 < OVERHEAD_P50_TARGET_MS,
         f"orchestration overhead p50 {p50:.1f} ms per step (< {OVERHEAD_P50_TARGET_MS:g} ms)"),
        (ok == requested,
         f"{ok} of {requested} concurrent runs succeeded in {concurrent.wall_s:.1f} s "
         f"(target: {CONCURRENT_RUNS_TARGET} without errors"
         + ("" if requested >= CONCURRENT_RUNS_TARGET else "; this run started fewer") + ")"),
    ]  # fmt: skip
    head = "**Meets targets**" if all(c for c, _ in checks) else "**Below target**"
    return head + ": " + "; ".join(("" if c else "MISSED: ") + t for c, t in checks) + "."


def _table(headers: list[str], rows: list[list[str]], *, numeric_from: int = 1) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(headers))]
    return ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]  # fmt: skip


def _print(title: str, headers: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(cell.replace("**", "").replace("`", "") for cell in row))
    console.print(table)


def _section(
    argv: list[str], serial: Phase, concurrent: Phase, requested: int, took_s: float
) -> str:
    command = shlex.join([".venv/bin/python", "bench/agent.py", *argv])
    facts = environment_facts("python", serve_env={})
    tools = ", ".join(name for name, _ in LONG_SESSION)
    return "\n".join([
        "The real agent in one process, as an `AgentHost` actor runs it minus Ray: "
        "`AgentHostCore` (default `AgentSettings`) writing through `LocalWorkspaceWriter` "
        "(an in-process `WorkspaceHostCore`) to SQLite (WAL, `synchronous=FULL`) and local "
        "blobs in a temp dir, calling the model through `LLMRouter` (run and user budgets "
        "checked, provider keys looked up; the run stores each call's usage record with its "
        "log) → `LiteLLMBackend` → litellm → HTTP "
        "on loopback → the scripted OpenAI-compatible server (`tests/harness/fake_openai.py`, "
        "in a child process, answering at once). Each run gets its own workspace and plays "
        f"{len(LONG_SESSION)} model calls: {tools}. No `run_command`, so no sandbox time is "
        "in any step.",
        "",
        "A step runs from one model call's start to the next one's (for the last, to the "
        "run's end), so it holds the previous reply's handling (one transaction: the usage, "
        "message and action events, the run row, the usage record), the tool (a write is a "
        "new version), its observation (a second transaction), the loop's checks (cancel, "
        "guardrails, context estimate) and the router's work before its backend call. The "
        "model call is timed around the router's backend "
        "(`TimedBackend` in `bench/_agent_platform.py`); overhead = step - model call. The "
        "direct baseline sends exactly the requests the agent sent (same messages, same tool "
        "list) with `litellm.acompletion`, in the same run.",
        "",
        f"Command: `{command}` ({took_s:.0f} s)",
        "",
        *_table(STEP_HEADERS, _step_rows(serial)),
        "",
        *_table(TOOL_HEADERS, _tool_rows(serial)),
        "",
        "Where a step's overhead goes (py-spy, and timing each awaited call in a diagnostic "
        "run at p50): two durable SQLite commits, each an fsync of the WAL "
        "(`synchronous=FULL`; a bare fsync takes ~3 ms on this disk), ~3 ms each: the reply "
        "(`usage`, `message` and the first `action` events, the run row, the call's "
        "`UsageRecord`) before the tool runs, and the `observation` (with the next call's "
        "`action`) after it; the tool itself, ~4.5 ms (a `write_file` or `edit_file` is a "
        "new version through the workspace's writer); litellm's post-call success logging, "
        "~1.4 ms per call on the event loop after the timed model call (kept: it feeds the "
        "litellm Router's per-deployment success counts, which its cooldowns use). No reads: "
        "the run counts its own spend, the router keeps users' provider keys and daily spend "
        "for `cache_ttl_s` (5 s), and the cancel flag is read at most once per "
        "`poll_interval_s` (0.1 s). Before this (p50 21.0 ms): six commits and four reads per "
        "step, events inserted through the ORM.",
        "",
        f"{requested} runs started at once (each on its own workspace, created beforehand; "
        f"{len(SHORT_SESSION)} model calls: write, read, edit, list, finish), then the same "
        "number of concurrent "
        "chains of direct litellm calls replaying those runs' requests. Errors count runs "
        "that did not succeed or had a failed tool call. The model server's process shares "
        "the 2 cores.",
        "",
        *_table(LOAD_HEADERS, _load_rows(concurrent, requested)),
        "",
        _verdict(serial, concurrent, requested),
        "",
        *(f"- {name}: {facts[name]}" for name in ("Date", "Machine", "Python")),
        f"- litellm {version('litellm')}, SQLAlchemy {version('sqlalchemy')} + aiosqlite "
        f"{version('aiosqlite')}; temp dirs under {tempfile.gettempdir()}",
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="5 runs, 10 at once; prints only")
    parser.add_argument("--runs", type=int, default=None, help="runs in part 1 (default 30)")
    parser.add_argument("--concurrency", type=int, default=None, help="runs at once (default 50)")
    parser.add_argument("--output", default=None, help="markdown file to update; '-' to print only")
    args = parser.parse_args(argv)
    args.runs = args.runs or (5 if args.quick else 30)
    args.concurrency = args.concurrency or (10 if args.quick else CONCURRENT_RUNS_TARGET)
    output = args.output or ("-" if args.quick else "docs/benchmarks.md")
    begun = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="vc-agent-"))
    try:
        serial, concurrent = asyncio.run(_measure(args, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    took_s = time.monotonic() - begun
    _print("Agent: per step, one run at a time", STEP_HEADERS, _step_rows(serial))
    _print("Overhead by the step's tool", TOOL_HEADERS, _tool_rows(serial))
    _print(
        f"{args.concurrency} runs at once", LOAD_HEADERS, _load_rows(concurrent, args.concurrency)
    )
    console.print(_verdict(serial, concurrent, args.concurrency).replace("**", ""))
    console.print(f"total {took_s:.0f}s")
    if output != "-":
        section = _section(argv, serial, concurrent, args.concurrency, took_s)
        write_section(Path(output), "Agent", section)
        console.print(f"wrote the Agent section of {output}")


if __name__ == "__main__":
    main()
