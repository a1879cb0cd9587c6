"""Bounded concurrency for blob round trips, raising the first error as itself."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio

from actors.workspace.api import WorkspaceError
from state.errors import StateError

__all__ = ["BLOB_CONCURRENCY", "map_bounded"]

# Blob puts and gets in flight at once (S3 round trips dominate large batches).
BLOB_CONCURRENCY = 16

_T = TypeVar("_T")
_R = TypeVar("_R")


async def map_bounded(
    func: Callable[[_T], Awaitable[_R]], items: Sequence[_T], *, limit: int = BLOB_CONCURRENCY
) -> list[_R]:
    """``[await func(item) for item in items]`` with up to ``limit`` calls in flight.

    The first storage or workspace error is raised as itself (not wrapped in an exception
    group), after the calls in flight have finished; no further calls start once one failed.
    """
    if len(items) == 1:
        return [await func(items[0])]
    results: dict[int, _R] = {}
    errors: list[StateError | WorkspaceError | OSError] = []
    limiter = anyio.CapacityLimiter(limit)

    async def run(index: int, item: _T) -> None:
        async with limiter:
            if errors:
                return
            try:
                results[index] = await func(item)
            except (StateError, WorkspaceError, OSError) as exc:
                errors.append(exc)

    async with anyio.create_task_group() as group:
        for index, item in enumerate(items):
            group.start_soon(run, index, item)
    if errors:
        raise errors[0]
    return [results[index] for index in range(len(items))]
