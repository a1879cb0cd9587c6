"""``AgentLoop``: one run of the coding agent, driven from (and into) its event log.

The loop is rebuilt from the log every time it starts (``RunState``), so a run whose host died
continues where its log ends: the history is replayed, and a tool call that already has an
observation is never executed again. A call whose action was logged but whose observation was
not (the host died while it ran) is executed again if the tool is idempotent (reads, writes of
whole content, edits checked against the current content, process start/stop); a
``run_command`` instead gets an "interrupted" observation, and the model decides whether to run
it again.

Write-ahead: every event is durable in the log before anything acts on it. The events of one
moment are appended in one transaction: a model reply's usage and message, the action of its
first tool call and the run row's progress, before the tool runs; then each call's observation
with the next call's action. So a step costs two commits, not one per event.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import structlog

from actors.agent.api import RunEvent, RunInfo
from actors.agent.context import condense, estimate_tokens
from actors.agent.guardrails import Guardrails
from actors.agent.replay import Outcome, RunState, loop_key
from actors.agent.settings import AgentSettings
from actors.agent.sink import NullSink, RunEventSink
from actors.agent.store import RunStore, RunUpdate, UsageEntry
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
Events = list[tuple[str, dict[str, Any]]]


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
        self._limits = Guardrails.of(run.limits, settings)
        self._state = RunState(settings.context_token_budget)
        # Calls whose action this loop logged and has not yet run (an action found in the log
        # on start belongs to a host that died while running it).
        self._staged: set[str] = set()
        self._condensed_turns = 0

    # --- the run ----------------------------------------------------------------------------------

    async def run(self) -> Outcome:
        """Drive the run to its end and record it. ``CancelledError`` that is not a requested
        cancellation (the host is stopping) propagates with the run left active, to resume."""
        events = await self._store.all_events(self.run_id)
        for event in events:
            self._state.apply(event)
        if self._state.ended is not None:  # the log ended but the row was not updated
            await self._save(self._state.ended)
            return self._state.ended
        try:
            await self._wait_for_turn()
            await self._begin(resumed=bool(events))
            outcome = await self._drive_within_wall_time()
        except (asyncio.CancelledError, _Cancelled):
            if not (self.cancel_requested or await self._cancel_seen()):
                raise
            await self._abort_unobserved("Cancelled by the user.")
            outcome = Outcome("cancelled", "Cancelled by the user.", reason="cancelled")
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
            await self._log(
                [
                    ("status", {"status": "running", "host": self._host}),
                    ("message", {"role": "user", "content": self._run.prompt}),
                ],
                run=RunUpdate(status="running", started=True),
            )
            self._started_at = datetime.now(UTC)
        else:
            await self._log(
                [("status", {"status": "running", "host": self._host, "resumed": True})],
                run=RunUpdate(status="running", started=self._run.started_at is None),
            )
            self._started_at = self._run.started_at or datetime.now(UTC)
        log.info("agent.run_started", run_id=self.run_id, resumed=resumed, host=self._host)

    async def _drive_within_wall_time(self) -> Outcome:
        elapsed = (datetime.now(UTC) - self._started_at).total_seconds()
        remaining = self._limits.max_wall_time_s - elapsed
        if remaining <= 0:
            return self._limits.wall_time()
        try:
            async with asyncio.timeout(remaining) as deadline:
                return await self._drive()
        except TimeoutError:
            if not deadline.expired():
                raise
            await self._abort_unobserved("Stopped: the run's wall time ran out.")
            return self._limits.wall_time()

    async def _drive(self) -> Outcome:
        state = self._state
        while True:
            if await self._cancel_seen():
                raise _Cancelled()
            if state.summary is not None:
                return Outcome("succeeded", state.summary)
            last = state.history[-1] if state.history else {}
            if last.get("role") == "assistant" and not last.get("tool_calls"):
                # The model answered without calling a tool: that answer is the result.
                return Outcome("succeeded", str(last.get("content") or "Done."))
            if state.pending:
                outcome = await self._run_tools()
                if outcome is not None:
                    return outcome
                continue
            stop = self._limits.check(state.progress)
            if stop is not None:
                return stop
            response = await self._call_model()
            if isinstance(response, Outcome):
                return response

    # --- tools ------------------------------------------------------------------------------------

    async def _run_tools(self) -> Outcome | None:
        state = self._state
        calls = list(state.pending)
        for index, call in enumerate(calls):
            call_id, name = call["id"], call["name"]
            if call_id in state.observed:
                continue
            if call_id in state.actions and call_id not in self._staged:
                # Logged by a host that died while running it.
                observation = (
                    await self._execute(call)
                    if name in IDEMPOTENT_TOOLS
                    else Observation(False, _INTERRUPTED, {"interrupted": True})
                )
            else:
                if call_id not in state.actions:  # a log written before actions were batched
                    await self._log([_action(call)])
                observation = await self._execute(call)
            events: Events = [("observation", observation.payload(call_id, name))]
            following = calls[index + 1] if index + 1 < len(calls) else None
            if (
                following is not None
                and following["id"] not in state.actions
                and not self._ends_run(call, observation)
            ):
                events.append(_action(following))
            await self._log(events)
            if state.summary is not None:
                return Outcome("succeeded", state.summary)
            key = loop_key(name, call["arguments"])
            if not observation.ok and state.failures[key] >= self._settings.loop_threshold:
                return Outcome(
                    "stopped",
                    f"Stopped: the agent repeated the same failing action ({name} with the "
                    f"same arguments) {state.failures[key]} times, so it was stopped before "
                    f"looping further. Last error: {observation.output[:300]}",
                    reason="loop_detected",
                )
        return None

    def _ends_run(self, call: dict[str, str], observation: Observation) -> bool:
        """True when ``observation`` will end the run: a finish, or loop detection."""
        if call["name"] == "finish" and observation.ok:
            return True
        if observation.ok or observation.data.get("interrupted"):
            return False
        failures = self._state.failures[loop_key(call["name"], call["arguments"])]
        return failures + 1 >= self._settings.loop_threshold

    async def _execute(self, call: dict[str, str]) -> Observation:
        self._staged.discard(call["id"])
        return await self._tools.execute(call["name"], call["arguments"], call["id"])

    async def _abort_unobserved(self, text: str) -> None:
        """Observe every call that has an action but no observation (the run is ending)."""
        state = self._state
        aborted = Observation(False, text, {"aborted": True})
        events: Events = [
            ("observation", aborted.payload(call["id"], call["name"]))
            for call in state.pending
            if call["id"] in state.actions
        ]
        if events:
            await self._log(events)

    # --- the model --------------------------------------------------------------------------------

    async def _call_model(self) -> ChatResponse | Outcome:
        state = self._state
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, *state.history]
        for _ in range(_CONTEXT_RETRIES + 1):
            view, summarized = condense(
                messages,
                budget_tokens=state.budget_tokens,
                keep_recent_turns=self._settings.keep_recent_turns,
                tools=TOOL_SPECS,
            )
            if view is not messages and summarized != self._condensed_turns:
                self._condensed_turns = summarized
                context = {
                    "reason": "estimate",
                    "tokens_before": estimate_tokens(messages, TOOL_SPECS),
                    "tokens_after": estimate_tokens(view, TOOL_SPECS),
                    "summarized_turns": summarized,
                    "budget_tokens": state.budget_tokens,
                }
                await self._log([("context", context)])
            try:
                response = await self._llm.complete(self._request(view))
            except ContextWindowExceeded as exc:
                tokens = estimate_tokens(view, TOOL_SPECS)
                budget = max(1, min(state.budget_tokens, tokens) * 6 // 10)
                self._condensed_turns = -1
                context = {
                    "reason": "context_window",
                    "detail": exc.detail,
                    "tokens_before": tokens,
                    "budget_tokens": budget,
                }
                await self._log([("context", context)])
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
        return ChatRequest(
            messages=messages,
            model=run.model,
            tools=TOOL_SPECS,
            timeout_s=self._settings.model_timeout_s,
            context=CallContext(
                user_id=run.user_id,
                workspace_id=run.workspace_id,
                run_id=run.run_id,
                run_budget_usd=self._limits.max_cost_usd,
                # This loop is the run's single writer: its log's count is the run's spend,
                # and it stores each call's usage record with the call's usage event.
                run_spent_usd=self._state.progress.usage.cost_usd,
                usage_recorded_by_caller=True,
                request_id=run.limits.get("request_id"),
            ),
        )

    async def _record_response(self, response: ChatResponse) -> None:
        """Log the reply (usage, message) and the action of its first tool call, with the run
        row's progress and the call's usage record, in one transaction: the next thing the
        loop does is run that call."""
        usage, message = response.usage, response.message
        calls = [
            {"id": c.id or f"call-{self._state.seq}-{i}", "name": c.name, "arguments": c.arguments}
            for i, c in enumerate(message.tool_calls)
        ]
        events: Events = [
            (
                "usage",
                {
                    "model": response.served_by or response.model,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cost_usd": usage.cost_usd or 0.0,
                },
            ),
            ("message", {"role": "assistant", "content": message.content, "tool_calls": calls}),
        ]
        if calls:
            events.append(_action(calls[0]))
        progress = self._state.progress.after(events)
        await self._log(
            events,
            run=RunUpdate(steps=progress.steps, result=progress.result()),
            usage=UsageEntry(self._run.user_id, self._run.workspace_id, response),
        )

    # --- the log ----------------------------------------------------------------------------------

    async def _log(
        self, events: Events, *, run: RunUpdate | None = None, usage: UsageEntry | None = None
    ) -> list[RunEvent]:
        """Append ``events`` (with ``run``'s change to the row and ``usage``) in one
        transaction, then fold them into the state and publish them."""
        write = asyncio.ensure_future(
            self._store.append_batch(self.run_id, self._state.seq + 1, events, run=run, usage=usage)
        )
        try:
            appended = await asyncio.shield(write)
        except asyncio.CancelledError:
            # Cancelled (a cancel, the wall time, the host stopping) while writing: let the
            # write end, so the state matches the log whether it committed or not.
            self._fold(await write)
            raise
        self._fold(appended)
        for event in appended:
            try:
                await self._sink.publish(self._run.workspace_id, event)
            except Exception as exc:  # noqa: BLE001 - a sink must not fail the run; it is logged
                log.warning("agent.sink_failed", run_id=self.run_id, error=type(exc).__name__)
        return appended

    def _fold(self, appended: list[RunEvent]) -> None:
        for event in appended:
            self._state.apply(event)
            if event.kind == "action":
                self._staged.add(str(event.payload["tool_call_id"]))

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

    async def fail(self, exc: BaseException) -> None:
        """End the run ``failed`` after an unexpected error (the host logged it)."""
        detail = f"Internal error: {type(exc).__name__}"
        await self._end(Outcome("failed", detail, reason="error", error=detail))

    async def _end(self, outcome: Outcome) -> None:
        """Log the end (an error event first when there is one) and close the run's row, in
        one transaction."""
        events: Events = []
        if outcome.error is not None or outcome.status in ("failed", "stopped"):
            error = {"code": outcome.reason or "error", "detail": outcome.error or outcome.message}
            events.append(("error", error))
        status = {"status": outcome.status, "reason": outcome.reason, "message": outcome.message}
        events.append(("status", status))
        await self._log(events, run=self._closing(outcome))
        log.info(
            "agent.run_ended",
            run_id=self.run_id,
            status=outcome.status,
            reason=outcome.reason,
            steps=self._state.progress.steps,
        )

    async def _save(self, outcome: Outcome) -> None:
        """Close the run's row (its log already ended)."""
        await self._store.append_batch(
            self.run_id, self._state.seq + 1, [], run=self._closing(outcome)
        )

    def _closing(self, outcome: Outcome) -> RunUpdate:
        progress = self._state.progress
        return RunUpdate(
            status=outcome.status,
            steps=progress.steps,
            result=progress.result(outcome),
            finished=True,
        )


def _action(call: dict[str, str]) -> tuple[str, dict[str, Any]]:
    return (
        "action",
        {"tool_call_id": call["id"], "tool": call["name"], "arguments": call["arguments"]},
    )
