"""The coding agent: runs (``AgentLoop``) hosted many per process (``AgentHostCore``), their
tools, context management and the append-only event log (``RunStore``), all plain Python.

The Ray shell (``actor.py``: the ``AgentHost`` actor and ``RayAgentClient``) lives beside these
modules and is deliberately not imported here, so that importing the package never imports Ray.
"""

from __future__ import annotations

from actors.agent.api import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    AgentClient,
    RunEvent,
    RunInfo,
    RunRequest,
    RunStatus,
    RunUsage,
)
from actors.agent.context import condense, estimate_tokens
from actors.agent.errors import AgentError, AgentUnavailable, RunNotFound
from actors.agent.host import AgentHostCore, run_limits
from actors.agent.local import LocalAgentClient
from actors.agent.loop import AgentLoop, Outcome
from actors.agent.settings import AgentSettings
from actors.agent.sink import NullSink, RunEventSink
from actors.agent.store import LogConflict, RunStore
from actors.agent.tools import TOOL_SPECS, Observation, Toolbox

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "TOOL_SPECS",
    "AgentClient",
    "AgentError",
    "AgentHostCore",
    "AgentLoop",
    "AgentSettings",
    "AgentUnavailable",
    "LocalAgentClient",
    "LogConflict",
    "NullSink",
    "Observation",
    "Outcome",
    "RunEvent",
    "RunEventSink",
    "RunInfo",
    "RunNotFound",
    "RunRequest",
    "RunStatus",
    "RunStore",
    "RunUsage",
    "Toolbox",
    "condense",
    "estimate_tokens",
    "run_limits",
]
