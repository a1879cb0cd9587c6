"""``AgentLoop``: one run of the coding agent, driven from (and into) its event log.

The loop is rebuilt from the log every time it starts, so a run whose host died continues where
its log ends: the history is replayed, and a tool call that already has an observation is never
executed again. A call whose action was logged but whose observation was not (the host died while
it ran) is executed again if the tool is idempotent (reads, writes of whole content, edits checked
against the current content, process start/stop); a ``run_command`` instead gets an
"interrupted" observation, and the model decides whether to run it again.

Write-ahead: the action event is appended before the tool runs, the observation after; model
messages and usage are appended as they arrive, before anything acts on them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from actors.agent.api import RunEvent, RunInfo, RunStatus, RunUsage
from actors.agent.context import condense, estimate_tokens
from actors.agent.settings import AgentSettings
from actors.agent.sink import NullSink, RunEventSink
from actors.agent.store import RunStore
from actors.agent.tools import IDEMPOTENT_TOOLS, TOOL_SPECS, Observation, Toolbox
from serve_apps.llm_router.errors import BudgetExceeded, ContextWindowExceeded, LLMError
from serve_apps.llm_router.ports import LLMClient
from serve_apps.llm_router.types import CallContext, ChatRequest, ChatResponse

__all__ = ["SYSTEM_PROMPT", "AgentLoop", "Outcome"]

log = structlog.get_logger("agent.loop")

SYSTEM_PROMPT = (
    "You are Vibecode's coding agent. You work in a workspace of files, mounted at /workspace "
    "in a sandbox without network access. Use the tools to inspect and change files and to "
    "run commands; prefer edit_file with an exact, unique old_string over rewriting whole "
    "files; run the code or its tests to check your work. When the task is done, call finish "
    "with a short summary of what you changed."
)
# Attempts to call the model after condensing for a context-length error, per step.
_CONTEXT_RETRIES = 3
_INTERRUPTED = (
    "Interrupted: the agent's host stopped while this command was running, so it may or may "
    "not have completed. Check the workspace (list_files, read_file) before running it again."
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a run ended."""

    status: RunStatus
    message: str
    reason: str | None = None
    error: str | None = None


class _Cancelled(Exception):
    """The run's cancellation was seen at a step boundary."""


class AgentLoop:
    def __init__(
        self,
        run: RunInfo,
        *,
        store: RunStore,
        llm: LLMClient,
        toolbox: Toolbox,
        settings: AgentSettings,
        sink: RunEventSink | None = None,
        host: str | None = None,
    ) -> None:
        self.run_id = run.run_id
        self._run = run
        self._store = store
        self._llm = llm
        self._tools = toolbox
        self._settings = settings
        self._sink = sink or NullSink()
        self._host = host
        self.cancel_requested = False
        self._cancel_checked_at = float("-inf")
        limits = run.limits
        self._max_steps = int(limits.get("max_steps") or settings.max_steps)
        self._max_tokens = int(limits.get("max_tokens") or settings.max_tokens)
        self._max_cost = limits.get("max_cost_usd")
        self._max_wall_s = float(limits.get("max_wall_time_s") or settings.max_wall_time_s)
        # Replayed from the log.
        self._seq = 0
        self._history: list[dict[str, Any]] = []
        self._usage = RunUsage()
        self._steps = 0
        self._pending: list[dict[str, str]] = []
        self._actions: dict[str, str] = {}  # call id -> loop key, for calls with an action
        self._observed: set[str] = set()
        self._failures: Counter[str] = Counter()
        self._files: dict[str, None] = {}
        self._executions: list[dict[str, Any]] = []
        self._budget_tokens = settings.context_token_budget
        self._condensed_turns = 0
        self._ended: Outcome | None = None
        self._summary: str | None = None
        self._in_flight: dict[str, str] | None = None

    # --- the run ----------------------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Drive the run to its end and record it. ``CancelledError`` that is not a requested
        cancellation (the host is stopping) propagates with the run left active, to resume."""
        events = await self._store.all_events(self.run_id)
        for event in events:
            self._replay(event)
        if self._ended is not None:  # the log ended but the row was not updated
            await self._save(self._ended)
            return self._ended
        try:
            await self._wait_for_turn()
            await self._begin(resumed=bool(events))
            outcome = await self._drive_within_wall_time()
        except (asyncio.CancelledError, _Cancelled):
            if not (self.cancel_requested or await self._cancel_seen()):
                raise
            outcome = await self._cancelled()
        await self._end(outcome)
        return outcome

    async def _wait_for_turn(self) -> None:
        """Wait while an earlier run of the same workspace is active (one writer at a time)."""
        while True:
            if await self._cancel_seen():
                raise _Cancelled()
            first = await self._store.first_in_line(self.run_id, self._run.workspace_id)
            if first in (None, self.run_id):
                return
            await asyncio.sleep(self._settings.poll_interval_s)

    async def _begin(self, *, resumed: bool) -> None:
        if not resumed:
            await self._store.update(self.run_id, status="running", started=True)
            await self._append("status", {"status": "running", "host": self._host})
            await self._append("message", {"role": "user", "content": self._run.prompt})
            self._started_at = datetime.now(UTC)
        else:
            await self._store.update(
                self.run_id, status="running", started=self._run.started_at is None
            )
            await self._append("status", {"status": "running", "host": self._host, "resumed": True})
            self._started_at = self._run.started_at or datetime.now(UTC)
        log.info("agent.run_started", run_id=self.run_id, resumed=resumed, host=self._host)

    async def _drive_within_wall_time(self) -> Outcome:
        elapsed = (datetime.now(UTC) - self._started_at).total_seconds()
        remaining = self._max_wall_s - elapsed
        if remaining <= 0:
            return self._wall_time()
        try:
            async with asyncio.timeout(remaining) as deadline:
                return await self._drive()
        except TimeoutError:
            if not deadline.expired():
                raise
            if self._in_flight is not None:
                await self._observe_abort(self._in_flight, "Stopped: the run's wall time ran out.")
            return self._wall_time()

    def _wall_time(self) -> Outcome:
        return Outcome(
            "stopped",
            f"Stopped: the run reached its wall-time limit of {self._max_wall_s:g} s.",
            reason="wall_time",
        )

    async def _drive(self) -> Outcome:
        while True:
            if await self._cancel_seen():
                raise _Cancelled()
            if self._summary is not None:
                return Outcome("succeeded", self._summary)
            last = self._history[-1] if self._history else {}
            if last.get("role") == "assistant" and not last.get("tool_calls"):
                # The model answered without calling a tool: that answer is the result.
                return Outcome("succeeded", str(last.get("content") or "Done."))
            if self._pending:
                outcome = await self._run_tools()
                if outcome is not None:
                    return outcome
                continue
            stop = self._guardrail()
            if stop is not None:
                return stop
            response = await self._call_model()
            if isinstance(response, Outcome):
                return response

    # --- tools ------------------------------------------------------------------------------------

    async def _run_tools(self) -> Outcome | None:
        calls, self._pending = self._pending, []
        for call in calls:
            call_id, name = call["id"], call["name"]
            if call_id in self._observed:
                continue
            key = _loop_key(name, call["arguments"])
            if call_id in self._actions:
                observation = (
                    await self._execute(call)
                    if name in IDEMPOTENT_TOOLS
                    else Observation(False, _INTERRUPTED, {"interrupted": True})
                )
            else:
                await self._append(
                    "action",
                    {"tool_call_id": call_id, "tool": name, "arguments": call["arguments"]},
                )
                self._actions[call_id] = key
                observation = await self._execute(call)
            await self._observe(call_id, name, observation)
            if self._summary is not None:
                return Outcome("succeeded", self._summary)
            if not observation.ok and self._failures[key] >= self._settings.loop_threshold:
                return Outcome(
                    "stopped",
                    f"Stopped: the agent repeated the same failing action ({name} with the "
                    f"same arguments) {self._failures[key]} times, so it was stopped before "
                    f"looping further. Last error: {observation.output[:300]}",
                    reason="loop_detected",
                )
        return None

    async def _execute(self, call: dict[str, str]) -> Observation:
        self._in_flight = call
        try:
            return await self._tools.execute(call["name"], call["arguments"], call["id"])
        finally:
            self._in_flight = None

    async def _observe(self, call_id: str, name: str, observation: Observation) -> None:
        await self._append("observation", observation.payload(call_id, name))

    async def _observe_abort(self, call: dict[str, str], text: str) -> None:
        await self._observe(call["id"], call["name"], Observation(False, text, {"aborted": True}))

    # --- the model --------------------------------------------------------------------------------

    def _guardrail(self) -> Outcome | None:
        if self._steps >= self._max_steps:
            return Outcome(
                "stopped",
                f"Stopped: the run reached its limit of {self._max_steps} steps.",
                reason="max_steps",
            )
        if self._usage.total_tokens >= self._max_tokens:
            return Outcome(
                "stopped",
                f"Stopped: the run used {self._usage.total_tokens} tokens, its limit is "
                f"{self._max_tokens}.",
                reason="max_tokens",
            )
        if self._max_cost is not None and self._usage.cost_usd >= float(self._max_cost):
            return Outcome(
                "stopped",
                f"Stopped: budget exceeded: {self._usage.cost_usd:.4f} USD spent of the run's "
                f"{float(self._max_cost):.4f} USD budget.",
                reason="budget",
            )
        return None

    async def _call_model(self) -> ChatResponse | Outcome:
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, *self._history]
        for _ in range(_CONTEXT_RETRIES + 1):
            view, summarized = condense(
                messages,
                budget_tokens=self._budget_tokens,
                keep_recent_turns=self._settings.keep_recent_turns,
                tools=TOOL_SPECS,
            )
            if view is not messages and summarized != self._condensed_turns:
                self._condensed_turns = summarized
                await self._append(
                    "context",
                    {
                        "reason": "estimate",
                        "tokens_before": estimate_tokens(messages, TOOL_SPECS),
                        "tokens_after": estimate_tokens(view, TOOL_SPECS),
                        "summarized_turns": summarized,
                        "budget_tokens": self._budget_tokens,
                    },
                )
            try:
                response = await self._llm.complete(self._request(view))
            except ContextWindowExceeded as exc:
                tokens = estimate_tokens(view, TOOL_SPECS)
                self._budget_tokens = max(1, min(self._budget_tokens, tokens) * 6 // 10)
                self._condensed_turns = -1
                await self._append(
                    "context",
                    {
                        "reason": "context_window",
                        "detail": exc.detail,
                        "tokens_before": tokens,
                        "budget_tokens": self._budget_tokens,
                    },
                )
                continue
            except BudgetExceeded as exc:
                return Outcome("stopped", f"Stopped: {exc.detail}", "budget", exc.detail)
            except LLMError as exc:
                return Outcome(
                    "failed", f"The model call failed: {exc.detail}", "error", exc.detail
                )
            await self._record_response(response)
            return response
        detail = "The history does not fit the model's context window even after condensing."
        return Outcome("failed", detail, "context_window", detail)

    def _request(self, messages: list[dict[str, Any]]) -> ChatRequest:
        run = self._run
        budget = self._max_cost
        return ChatRequest(
            messages=messages,
            model=run.model,
            tools=TOOL_SPECS,
            timeout_s=self._settings.model_timeout_s,
            context=CallContext(
                user_id=run.user_id,
                workspace_id=run.workspace_id,
                run_id=run.run_id,
                run_budget_usd=float(budget) if budget is not None else None,
                request_id=run.limits.get("request_id"),
            ),
        )

    async def _record_response(self, response: ChatResponse) -> None:
        usage = response.usage
        await self._append(
            "usage",
            {
                "model": response.served_by or response.model,
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cost_usd": usage.cost_usd or 0.0,
            },
        )
        message = response.message
        await self._append(
            "message",
            {
                "role": "assistant",
                "content": message.content,
                "tool_calls": [
                    {
                        "id": c.id or f"call-{self._seq}-{i}",
                        "name": c.name,
                        "arguments": c.arguments,
                    }
                    for i, c in enumerate(message.tool_calls)
                ],
            },
        )
        await self._store.update(self.run_id, steps=self._steps, result=self._result())

    # --- the log ----------------------------------------------------------------------------------

    async def _append(self, kind: str, payload: dict[str, Any]) -> RunEvent:
        event = await self._store.append(self.run_id, self._seq + 1, kind, payload)
        self._replay(event)
        try:
            await self._sink.publish(self._run.workspace_id, event)
        except Exception as exc:  # noqa: BLE001 - a sink must not fail the run; it is logged
            log.warning("agent.sink_failed", run_id=self.run_id, error=type(exc).__name__)
        return event

    def _replay(self, event: RunEvent) -> None:
        """Fold one event into the loop's state (used for the log and for new events alike)."""
        self._seq = event.seq
        payload = event.payload
        match event.kind:
            case "message" if payload.get("role") == "user":
                self._history.append({"role": "user", "content": payload.get("content")})
            case "message":
                calls = list(payload.get("tool_calls") or ())
                self._steps += 1
                self._pending = [dict(c) for c in calls]
                entry: dict[str, Any] = {"role": "assistant", "content": payload.get("content")}
                if calls:
                    entry["tool_calls"] = [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": c["arguments"]},
                        }
                        for c in calls
                    ]
                self._history.append(entry)
            case "action":
                call_id = str(payload.get("tool_call_id"))
                self._actions[call_id] = _loop_key(
                    str(payload.get("tool")), str(payload.get("arguments"))
                )
            case "observation":
                self._apply_observation(payload)
            case "usage":
                self._usage = RunUsage(
                    prompt_tokens=self._usage.prompt_tokens + int(payload["prompt_tokens"]),
                    completion_tokens=self._usage.completion_tokens
                    + int(payload["completion_tokens"]),
                    cost_usd=self._usage.cost_usd + float(payload.get("cost_usd") or 0.0),
                    model_calls=self._usage.model_calls + 1,
                )
            case "context":
                self._budget_tokens = min(self._budget_tokens, int(payload["budget_tokens"]))
            case "status" if payload.get("status") in (
                "succeeded",
                "failed",
                "stopped",
                "cancelled",
            ):
                self._ended = Outcome(
                    payload["status"], str(payload.get("message") or ""), payload.get("reason")
                )
            case _:
                pass

    def _apply_observation(self, payload: dict[str, Any]) -> None:
        call_id = str(payload.get("tool_call_id"))
        if call_id in self._observed:
            return
        self._observed.add(call_id)
        self._history.append(
            {"role": "tool", "tool_call_id": call_id, "content": str(payload.get("output"))}
        )
        data = payload.get("data") or {}
        for path in data.get("files_changed") or ():
            self._files[str(path)] = None
        if payload.get("tool") == "run_command" and "exit_code" in data:
            self._executions.append(
                {k: data.get(k) for k in ("command", "exit_code", "stdout", "stderr")}
            )
        if payload.get("tool") == "finish" and payload.get("ok"):
            self._summary = str(data.get("summary") or "Done.")
        key = self._actions.get(call_id)
        if key is not None and not payload.get("ok") and not data.get("interrupted"):
            self._failures[key] += 1
        self._pending = [c for c in self._pending if c["id"] != call_id]

    # --- the end ----------------------------------------------------------------------------------

    async def _cancel_seen(self) -> bool:
        """True once a cancel was requested: in-process at once (the host sets the flag), or
        through the database, read at most once per ``poll_interval_s`` to keep steps cheap."""
        if self.cancel_requested:
            return True
        now = time.monotonic()
        if now - self._cancel_checked_at < self._settings.poll_interval_s:
            return False
        self._cancel_checked_at = now
        if await self._store.status(self.run_id) == "cancelling":
            self.cancel_requested = True
        return self.cancel_requested

    async def _cancelled(self) -> Outcome:
        if self._in_flight is not None:
            await self._observe_abort(self._in_flight, "Cancelled by the user.")
        return Outcome("cancelled", "Cancelled by the user.", reason="cancelled")

    def _result(self, outcome: Outcome | None = None) -> dict[str, Any]:
        result: dict[str, Any] = {
            "usage": self._usage.as_dict(),
            "files_changed": list(self._files),
            "executions": self._executions,
        }
        if outcome is not None:
            result.update(message=outcome.message, stop_reason=outcome.reason)
        return result

    async def fail(self, exc: BaseException) -> None:
        """End the run ``failed`` after an unexpected error (the host logged it)."""
        detail = f"Internal error: {type(exc).__name__}"
        await self._end(Outcome("failed", detail, reason="error", error=detail))

    async def _end(self, outcome: Outcome) -> None:
        if outcome.error is not None or outcome.status in ("failed", "stopped"):
            await self._append(
                "error",
                {"code": outcome.reason or "error", "detail": outcome.error or outcome.message},
            )
        await self._append(
            "status",
            {"status": outcome.status, "reason": outcome.reason, "message": outcome.message},
        )
        await self._save(outcome)
        log.info(
            "agent.run_ended",
            run_id=self.run_id,
            status=outcome.status,
            reason=outcome.reason,
            steps=self._steps,
        )

    async def _save(self, outcome: Outcome) -> None:
        await self._store.update(
            self.run_id,
            status=outcome.status,
            steps=self._steps,
            result=self._result(outcome),
            finished=True,
        )


def _loop_key(name: str, arguments: str) -> str:
    try:
        canonical = json.dumps(json.loads(arguments or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        canonical = arguments
    return f"{name}:{canonical}"
