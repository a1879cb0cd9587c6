"""The agent's tools (OpenAI function calling) and ``Toolbox``, which executes them.

Files change through the ``WorkspaceWriter`` (each change is one version authored by the agent
run) and are read from durable state through the ``WorkspaceReader``; commands and processes run
in the workspace's sandbox through the writer. A failing tool is an observation the model sees
(``ok=False``), never an exception out of ``execute``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from actors.agent.settings import AgentSettings
from actors.workspace.api import (
    Author,
    WorkspaceError,
    WorkspaceWriter,
)
from actors.workspace.reader import WorkspaceReader
from sandbox import ExecRequest, SandboxError, StartRequest

__all__ = ["IDEMPOTENT_TOOLS", "TOOL_SPECS", "Observation", "Toolbox", "parse_arguments"]


def _tool(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict:  # type: ignore[type-arg]
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
TOOL_SPECS: list[dict[str, Any]] = [
    _tool("list_files", "List the workspace's files (recursively) with sizes.",
          {"path": {**_STR, "description": "a folder to list; default: all"}}, []),
    _tool("read_file", "Read a text file, optionally only lines start_line..end_line (1-based).",
          {"path": _STR, "start_line": _INT, "end_line": _INT}, ["path"]),
    _tool("write_file", "Create or overwrite a file with the given content.",
          {"path": _STR, "content": _STR}, ["path", "content"]),
    _tool("edit_file",
          "Replace old_string with new_string in a file. old_string must occur exactly once: "
          "include enough surrounding lines to make it unique.",
          {"path": _STR, "old_string": _STR, "new_string": _STR},
          ["path", "old_string", "new_string"]),
    _tool("search", "Search the workspace's files for a substring (or a regex) line by line.",
          {"query": _STR, "regex": {"type": "boolean"},
           "path": {**_STR, "description": "only files under this folder"}}, ["query"]),
    _tool("run_command",
          "Run a shell command in the workspace's sandbox (cwd /workspace, no network) and "
          "return its exit code and output. Files it changes become a version.",
          {"command": _STR, "timeout_s": {"type": "number"}}, ["command"]),
    _tool("start_process", "Start a long-running process (e.g. a dev server); returns its id.",
          {"command": _STR}, ["command"]),
    _tool("read_process_output", "Read a started process's output from an offset.",
          {"process_id": _STR, "offset": _INT}, ["process_id"]),
    _tool("stop_process", "Stop a started process.", {"process_id": _STR}, ["process_id"]),
    _tool("finish", "Finish the task with a short summary of what was done.",
          {"summary": _STR}, ["summary"]),
]  # fmt: skip
TOOL_NAMES = tuple(spec["function"]["name"] for spec in TOOL_SPECS)

# Tools that may safely run again when a host died after recording the action but before its
# observation: reads, whole-content writes (same bytes: no new version), edits (checked against
# the current content), a process start (its client token returns the same process) and stops.
# ``run_command`` is not: it gets an "interrupted" observation and the model decides.
IDEMPOTENT_TOOLS = frozenset(TOOL_NAMES) - {"run_command"}


@dataclass(frozen=True, slots=True)
class Observation:
    """A tool's result: ``output`` is what the model reads, ``data`` the structured facts."""

    ok: bool
    output: str
    data: dict[str, Any] = field(default_factory=dict)
    # Set by ``finish``: the run's final message.
    summary: str | None = None

    def payload(self, tool_call_id: str, tool: str) -> dict[str, Any]:
        return {
            "tool_call_id": tool_call_id,
            "tool": tool,
            "ok": self.ok,
            "output": self.output,
            "data": self.data,
        }


class ToolFailed(Exception):
    """A tool could not do what was asked; the message is the observation."""


def parse_arguments(raw: str) -> dict[str, Any]:
    """The call's arguments as an object; ``ToolFailed`` when not a JSON object."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ToolFailed(
            f"The arguments are not valid JSON ({exc.msg}); send a JSON object."
        ) from None
    if not isinstance(value, dict):
        raise ToolFailed("The arguments must be a JSON object.")
    return value


def _text(value: bytes, limit: int) -> str:
    text = value.decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters elided ...]\n{text[-half:]}"


def _arg(args: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = args.get(name, default)
    if value is None and default is None:
        if name in args:
            return None
        raise ToolFailed(f"Missing argument {name!r}.")
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind is float and isinstance(value, int):
        value = float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ToolFailed(f"Argument {name!r} must be a {kind.__name__}.")
    return value


class Toolbox:
    """Executes tool calls for one run in one workspace."""

    def __init__(
        self,
        *,
        writer: WorkspaceWriter,
        reader: WorkspaceReader,
        workspace_id: str,
        author: Author,
        settings: AgentSettings,
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._workspace_id = workspace_id
        self._author = author
        self._settings = settings

    async def execute(self, name: str, raw_arguments: str, call_id: str) -> Observation:
        """Run one call. Bad arguments, unknown tools and workspace or sandbox failures are
        observations with ``ok=False``."""
        try:
            args = parse_arguments(raw_arguments)
            match name:
                case "list_files":
                    return await self._list_files(args)
                case "read_file":
                    return await self._read_file(args)
                case "write_file":
                    return await self._write_file(args)
                case "edit_file":
                    return await self._edit_file(args)
                case "search":
                    return await self._search(args)
                case "run_command":
                    return await self._run_command(args)
                case "start_process":
                    return await self._start_process(args, call_id)
                case "read_process_output":
                    return await self._read_process_output(args)
                case "stop_process":
                    return await self._stop_process(args)
                case "finish":
                    summary = str(args.get("summary") or "Done.")
                    return Observation(True, "Finished.", {"summary": summary}, summary=summary)
                case _:
                    available = ", ".join(TOOL_NAMES)
                    raise ToolFailed(f"Unknown tool {name!r}. Available tools: {available}.")
        except ToolFailed as exc:
            return Observation(False, f"Error: {exc}", {"error": str(exc)})
        except (WorkspaceError, SandboxError) as exc:
            detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            return Observation(False, f"Error: {detail}", {"error": detail})

    # --- files ----------------------------------------------------------------------------------

    async def _list_files(self, args: dict[str, Any]) -> Observation:
        folder = str(args.get("path") or "").strip("/")
        files = await self._reader.list_files(self._workspace_id)
        if folder and folder != ".":
            files = [f for f in files if f.path.startswith(folder + "/")]
        shown = files[: self._settings.list_max_files]
        lines = [f"{f.path} ({f.size} bytes)" for f in shown]
        if len(files) > len(shown):
            lines.append(f"[... {len(files) - len(shown)} more files]")
        return Observation(True, "\n".join(lines) or "(no files)", {"count": len(files)})

    async def _read(self, path: str) -> str:
        _, data = await self._reader.read_file(self._workspace_id, path)
        return data.decode("utf-8", errors="replace")

    async def _read_file(self, args: dict[str, Any]) -> Observation:
        path = _arg(args, "path", str)
        text = await self._read(path)
        lines = text.splitlines(keepends=True)
        start = _arg(args, "start_line", int, 1) or 1
        end = _arg(args, "end_line", int, len(lines)) or len(lines)
        if start < 1 or end < start:
            raise ToolFailed(f"Invalid line range {start}..{end}.")
        chosen = "".join(lines[start - 1 : end])
        limit = self._settings.tool_output_chars
        if len(chosen) > limit:
            chosen = chosen[:limit] + "\n[... truncated; read a smaller line range ...]"
        header = f"{path} (lines {start}-{min(end, len(lines))} of {len(lines)})"
        return Observation(True, f"{header}\n{chosen}", {"path": path, "lines": len(lines)})

    async def _save(self, path: str, content: str, what: str) -> Observation:
        info = await self._writer.apply_batch(
            self._workspace_id,
            {path: content.encode()},
            author=self._author,
            message=f"Agent run {self._author.run_id}: {what} {path}",
        )
        changed = bool(info.changes)
        data = {"path": path, "version": info.number, "changed": changed}
        if changed:
            data["files_changed"] = [path]
        note = f"version {info.number}" if changed else "unchanged"
        return Observation(True, f"{what.capitalize()} {path} ({note}).", data)

    async def _write_file(self, args: dict[str, Any]) -> Observation:
        return await self._save(_arg(args, "path", str), _arg(args, "content", str), "wrote")

    async def _edit_file(self, args: dict[str, Any]) -> Observation:
        path = _arg(args, "path", str)
        old, new = _arg(args, "old_string", str), _arg(args, "new_string", str)
        if not old:
            raise ToolFailed("old_string must not be empty; use write_file to create a file.")
        text = await self._read(path)
        count = text.count(old)
        if count == 0:
            raise ToolFailed(f"old_string was not found in {path}; read the file and retry.")
        if count > 1:
            raise ToolFailed(
                f"old_string occurs {count} times in {path}; include more context so it is unique."
            )
        return await self._save(path, text.replace(old, new, 1), "edited")

    async def _search(self, args: dict[str, Any]) -> Observation:
        query = _arg(args, "query", str)
        folder = str(args.get("path") or "").strip("/")
        if args.get("regex"):
            try:
                pattern = re.compile(query)
            except re.error as exc:
                raise ToolFailed(f"Invalid regular expression: {exc}.") from None

            def matches(line: str) -> bool:
                return pattern.search(line) is not None
        else:

            def matches(line: str) -> bool:
                return query in line

        limit = self._settings.search_max_results
        hits: list[str] = []
        for info in await self._reader.list_files(self._workspace_id):
            if folder and not info.path.startswith(folder + "/"):
                continue
            if info.size > self._settings.search_max_file_bytes:
                continue
            for number, line in enumerate((await self._read(info.path)).splitlines(), 1):
                if matches(line):
                    hits.append(f"{info.path}:{number}: {line[:300]}")
                    if len(hits) >= limit:
                        hits.append(f"[... stopped at {limit} matches]")
                        return Observation(True, "\n".join(hits), {"matches": limit})
        return Observation(True, "\n".join(hits) or "No matches.", {"matches": len(hits)})

    # --- sandbox --------------------------------------------------------------------------------

    async def _run_command(self, args: dict[str, Any]) -> Observation:
        command = _arg(args, "command", str)
        cap = self._settings.command_timeout_s
        timeout_s = min(float(_arg(args, "timeout_s", float, cap) or cap), cap)
        outcome = await self._writer.exec(
            self._workspace_id,
            ExecRequest(shell=command, timeout_s=timeout_s),
            author=self._author,
        )
        result, sync = outcome.result, outcome.sync
        limit = self._settings.tool_output_chars
        stdout, stderr = _text(result.stdout, limit), _text(result.stderr, limit)
        data: dict[str, Any] = {
            "command": command,
            "exit_code": result.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "timed_out": result.timed_out,
            "duration_ms": result.duration_ms,
            "version": sync.version,
            "files_changed": list(sync.files_changed),
        }
        parts = [f"exit_code: {result.exit_code}" + (" (timed out)" if result.timed_out else "")]
        if stdout:
            parts.append(f"stdout:\n{stdout}")
        if stderr:
            parts.append(f"stderr:\n{stderr}")
        if sync.files_changed:
            parts.append(f"files changed: {', '.join(sync.files_changed)}")
        return Observation(result.exit_code == 0, "\n".join(parts), data)

    async def _start_process(self, args: dict[str, Any], call_id: str) -> Observation:
        command = _arg(args, "command", str)
        token = f"{self._author.run_id}:{call_id}"[-128:]
        info = await self._writer.start_process(
            self._workspace_id, StartRequest(shell=command), author=self._author, client_token=token
        )
        data = {"process_id": info.process_id, "command": command, "running": info.running}
        return Observation(True, f"Started process {info.process_id}.", data)

    async def _read_process_output(self, args: dict[str, Any]) -> Observation:
        process_id = _arg(args, "process_id", str)
        offset = _arg(args, "offset", int, 0) or 0
        logs = await self._writer.read_logs(self._workspace_id, process_id, offset)
        text = _text(logs.data, self._settings.tool_output_chars)
        state = "running" if logs.running else f"exited with code {logs.exit_code}"
        data = {
            "process_id": process_id,
            "next_offset": logs.next_offset,
            "running": logs.running,
            "exit_code": logs.exit_code,
        }
        output = f"[{state}; next offset {logs.next_offset}]\n{text}"
        return Observation(True, output, data)

    async def _stop_process(self, args: dict[str, Any]) -> Observation:
        process_id = _arg(args, "process_id", str)
        report = await self._writer.kill_process(
            self._workspace_id, process_id, author=self._author
        )
        data = {"process_id": process_id, "files_changed": list(report.files_changed)}
        return Observation(True, f"Stopped process {process_id}.", data)
