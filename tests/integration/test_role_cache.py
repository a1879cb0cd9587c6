"""The gateway's cache of members' roles: fresh across changes made through the same catalog,
and never staler than its TTL for changes made anywhere else (another replica, say)."""

from __future__ import annotations

import asyncio

import pytest

from actors.workspace.api import WorkspaceNotFound
from actors.workspace.catalog import WorkspaceCatalog
from serve_apps.gateway.role_cache import RoleCache
from state.db import Database
from state.models import User

TTL_S = 0.3


async def _user(database: Database, email: str) -> str:
    async with database.session() as session, session.begin():
        user = User(email=email, name=email.split("@")[0])
        session.add(user)
    return user.id


async def test_changes_made_elsewhere_apply_within_the_ttl(database: Database) -> None:
    ada, vic = await _user(database, "ada@example.com"), await _user(database, "vic@example.com")
    here = WorkspaceCatalog(database)
    roles = RoleCache(here, ttl_s=TTL_S)
    ws = (await here.create(ada, name="w", template="blank")).id
    await here.set_member(ada, ws, email="vic@example.com", role="viewer")
    assert await roles.role_of(vic, ws) == "viewer"

    # Another replica (its own catalog) makes vic an editor, then removes vic.
    elsewhere = WorkspaceCatalog(database)
    await elsewhere.set_member(ada, ws, email="vic@example.com", role="editor")
    await asyncio.sleep(TTL_S + 0.05)
    assert await roles.role_of(vic, ws) == "editor"
    await elsewhere.remove_member(ada, ws, vic)
    await asyncio.sleep(TTL_S + 0.05)
    with pytest.raises(WorkspaceNotFound):
        await roles.role_of(vic, ws)

    # A change made through this replica's catalog applies at once, whatever the TTL.
    long_lived = RoleCache(here, ttl_s=3600)
    await here.set_member(ada, ws, email="vic@example.com", role="viewer")
    assert await long_lived.role_of(vic, ws) == "viewer"
    await here.set_member(ada, ws, email="vic@example.com", role="editor")
    assert await long_lived.role_of(vic, ws) == "editor"
    await here.remove_member(ada, ws, vic)
    with pytest.raises(WorkspaceNotFound):
        await long_lived.role_of(vic, ws)
    await here.set_member(ada, ws, email="vic@example.com", role="viewer")
    assert await long_lived.role_of(vic, ws) == "viewer"
    await here.soft_delete(ada, ws)
    with pytest.raises(WorkspaceNotFound):
        await long_lived.role_of(vic, ws)


class _PausingCatalog(WorkspaceCatalog):
    """Holds each role lookup after its query until ``resume`` is set (to interleave a change)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.queried = asyncio.Event()
        self.resume = asyncio.Event()

    async def role_of(self, user_id: str, workspace_id: str) -> str:
        role = await super().role_of(user_id, workspace_id)
        self.queried.set()
        await self.resume.wait()
        return role


async def test_a_lookup_that_overlaps_a_change_is_not_kept(database: Database) -> None:
    ada, vic = await _user(database, "ada@example.com"), await _user(database, "vic@example.com")
    catalog = _PausingCatalog(database)
    roles = RoleCache(catalog, ttl_s=3600)
    ws = (await catalog.create(ada, name="w", template="blank")).id
    await catalog.set_member(ada, ws, email="vic@example.com", role="editor")

    lookup = asyncio.ensure_future(roles.role_of(vic, ws))
    await catalog.queried.wait()  # The lookup read "editor" ...
    await catalog.set_member(ada, ws, email="vic@example.com", role="viewer")  # ... vic is demoted
    catalog.resume.set()
    assert await lookup == "editor"  # (that lookup's answer was right when it was read)
    assert await roles.role_of(vic, ws) == "viewer"  # but it was not kept.
