"""The host that owns a workspace's live documents dies at the worst moments: between making an
edit durable and fanning it out, and while it holds an edit it could not integrate yet."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from actors.workspace import WorkspaceHostCore, WorkspaceSettings
from collab.document import TextDocument
from collab.protocol import (
    SyncType,
    decode_message,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from state.blobs.local import LocalBlobStore
from state.db import Database
from state.models import User, Workspace

PATH = "notes.md"


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


@pytest.fixture
def settings(tmp_path: Path) -> WorkspaceSettings:
    # Compact after every flush, so a compaction that dropped an edit would show.
    return WorkspaceSettings(
        trees_dir=tmp_path / "trees", collab_flush_delay_s=0.01, collab_compact_every=1
    )


@pytest.fixture
async def ws(database: Database) -> tuple[str, str]:
    async with database.session() as session, session.begin():
        user = User(email="ada@example.com", name="Ada")
        session.add(user)
        await session.flush()
        workspace = Workspace(name="live", owner_id=user.id)
        session.add(workspace)
    return workspace.id, user.id


def _host(
    name: str, database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings
) -> WorkspaceHostCore:
    return WorkspaceHostCore(name, db=database, blobs=blobs, settings=settings)


async def _document_text(host: WorkspaceHostCore, workspace_id: str) -> str:
    """What a client that connects now ends up with (the owner's full state)."""
    reply = await host.collab_receive(
        workspace_id, PATH, encode_sync_step1(b"\x00"), user_id="", can_write=False
    )
    probe = TextDocument()
    probe.apply_update(decode_message(reply.replies[0]).payload)
    return probe.text


async def test_an_edit_made_durable_by_an_owner_that_died_still_reaches_the_other_editors(
    database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings, ws: tuple[str, str]
) -> None:
    workspace_id, user_id = ws
    typist, other = TextDocument(), TextDocument()
    message = encode_update(typist.insert(0, "hello") or b"")
    doomed = _host("doomed", database, blobs, settings)
    await doomed.collab_open(workspace_id, PATH)
    first = await doomed.collab_receive(
        workspace_id, PATH, message, user_id=user_id, can_write=True
    )
    assert first.acked == 1
    # The host dies before its answer (and so the fan-out to the other editors) leaves it;
    # the gateway retries the same message on the host that takes over.
    del doomed
    async with _host("reborn", database, blobs, settings) as reborn:
        retried = await reborn.collab_receive(
            workspace_id, PATH, message, user_id=user_id, can_write=True
        )
        assert retried.acked == 1
        assert retried.broadcast is not None
        other.apply_update(decode_message(retried.broadcast).payload)
        assert other.text == "hello"
        # What the typist types next shows up at the other editor too.
        later = encode_update(typist.insert(5, " world") or b"")
        reply = await reborn.collab_receive(
            workspace_id, PATH, later, user_id=user_id, can_write=True
        )
        assert reply.broadcast is not None
        other.apply_update(decode_message(reply.broadcast).payload)
        assert other.text == "hello world"


async def test_an_acknowledged_edit_waiting_for_an_earlier_one_survives_the_owner(
    database: Database, blobs: LocalBlobStore, settings: WorkspaceSettings, ws: tuple[str, str]
) -> None:
    workspace_id, user_id = ws
    typist = TextDocument()
    before = typist.insert(0, "hello ") or b""
    after = typist.insert(6, "world") or b""
    # A peer that got the first edit from the typist directly (say, while the server was away).
    peer = TextDocument()
    peer.apply_update(before)

    async with _host("first", database, blobs, settings) as host:
        await host.collab_open(workspace_id, PATH)
        reply = await host.collab_receive(
            workspace_id, PATH, encode_update(after), user_id=user_id, can_write=True
        )
        assert reply.acked == 1
        # The owner asks the sender for what it lacks.
        asked = [decode_message(r) for r in reply.replies]
        assert [m.sync_type for m in asked] == [SyncType.STEP1]
        # Someone else types meanwhile; the document is flushed to its file and compacted.
        other = TextDocument()
        typed = encode_update(other.insert(0, "> ") or b"")
        await host.collab_receive(workspace_id, PATH, typed, user_id=user_id, can_write=True)
        await asyncio.sleep(0.3)
    # The typist is gone for good; the owner restarted. The peer syncs its first edit.
    async with _host("second", database, blobs, settings) as host:
        step1 = decode_message(await host.collab_open(workspace_id, PATH))
        step2 = encode_sync_step2(peer.encode_state(step1.payload))
        await host.collab_receive(workspace_id, PATH, step2, user_id=user_id, can_write=True)
        # Concurrent inserts at the start: either order is a correct merge.
        assert await _document_text(host, workspace_id) in {"> hello world", "hello world> "}
