"""The platform's long-lived actors: named, detached, restarted forever, one creation path.

Workspace hosts (``ws-host:<n>``), agent hosts (``agent-host:<n>``), sandbox pools
(``sandbox-pool:<node id>``) and the embedded realtime bus (``kv-bus:0``) are got-or-created by
name, outlive the deployment that made them, restart after a crash (their state is durable or
cattle), take no CPU reservation and run many calls at once. ``PLATFORM_ACTOR_PREFIXES`` lets
operators' tooling find them all.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PLATFORM_ACTOR_PREFIXES", "platform_actor_options"]

PLATFORM_ACTOR_PREFIXES = ("ws-host:", "agent-host:", "sandbox-pool:", "kv-bus:")


def platform_actor_options(
    name: str, *, namespace: str | None, max_concurrency: int, **extra: Any
) -> dict[str, Any]:
    """Options for ``ActorClass.options(...)`` that get or create the named platform actor.

    ``max_task_retries=0``: a call in flight when the actor dies fails instead of being replayed
    (writes are not idempotent); callers retry what is safe to retry themselves.
    """
    if not name.startswith(PLATFORM_ACTOR_PREFIXES):
        raise ValueError(f"{name!r} is not a platform actor name {PLATFORM_ACTOR_PREFIXES}")
    return {
        "name": name,
        "namespace": namespace,
        "get_if_exists": True,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "max_concurrency": max_concurrency,
        **extra,
    }
