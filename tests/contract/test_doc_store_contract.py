"""One behaviour contract for every DocumentStore (live documents' persistence): the in-process
fake and the database store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from actors.workspace.doc_store import DatabaseDocumentStore
from collab.document import TextDocument
from collab.errors import SequenceTaken
from collab.persistence import DocumentStore, MemoryDocumentStore
from state.db import Database
from state.models import User, Workspace
from tests.conftest import _fresh_database


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[DocumentStore, str]]:
    """A fresh store and a workspace id it may hold documents of."""
    if request.param == "memory":
        yield MemoryDocumentStore(), "w1"
        return
    for url in _fresh_database(request, tmp_path):
        db = Database(url, pool_size=2)
        try:
            async with db.session() as session, session.begin():
                user = User(email="ada@example.com", name="Ada")
                session.add(user)
                await session.flush()
                workspace = Workspace(name="live", owner_id=user.id)
                session.add(workspace)
            yield DatabaseDocumentStore(db), workspace.id
        finally:
            await db.close()


def _updates(n: int) -> list[bytes]:
    doc = TextDocument()
    return [doc.insert(len(doc.text), f"{i} ") or b"" for i in range(n)]


def _text(snapshot: bytes | None, updates: tuple[tuple[int, bytes], ...]) -> str:
    doc = TextDocument()
    if snapshot is not None:
        doc.apply_update(snapshot)
    for _, update in updates:
        doc.apply_update(update)
    return doc.text


async def test_a_document_never_stored_loads_as_none(store: tuple[DocumentStore, str]) -> None:
    documents, ws = store
    assert await documents.load(ws, "a.txt") is None


async def test_appended_updates_load_in_order(store: tuple[DocumentStore, str]) -> None:
    documents, ws = store
    updates = _updates(5)
    # Appending to a document with no stored state yet creates it.
    for seq, update in enumerate(updates, start=1):
        await documents.append(ws, "a.txt", seq, update)
    loaded = await documents.load(ws, "a.txt")
    assert loaded is not None
    assert [seq for seq, _ in loaded.updates] == [1, 2, 3, 4, 5]
    assert loaded.last_seq == 5
    assert _text(loaded.snapshot, loaded.updates) == "0 1 2 3 4 "
    assert await documents.load(ws, "b.txt") is None


async def test_a_taken_sequence_number_is_refused(store: tuple[DocumentStore, str]) -> None:
    documents, ws = store
    first, second = _updates(2)
    await documents.append(ws, "a.txt", 1, first)
    with pytest.raises(SequenceTaken):
        await documents.append(ws, "a.txt", 1, second)
    # Also on the fast path (the document is known to the store by now).
    await documents.append(ws, "a.txt", 2, second)
    with pytest.raises(SequenceTaken):
        await documents.append(ws, "a.txt", 2, first)
    loaded = await documents.load(ws, "a.txt")
    assert loaded is not None
    assert _text(loaded.snapshot, loaded.updates) == "0 1 "


async def test_compaction_keeps_the_state_and_the_later_updates(
    store: tuple[DocumentStore, str],
) -> None:
    documents, ws = store
    updates = _updates(6)
    doc = TextDocument()
    for seq, update in enumerate(updates, start=1):
        await documents.append(ws, "a.txt", seq, update)
        if seq <= 4:
            doc.apply_update(update)
    await documents.compact(ws, "a.txt", doc.encode_state(), through_seq=4)
    loaded = await documents.load(ws, "a.txt")
    assert loaded is not None
    assert loaded.snapshot_seq == 4
    assert [seq for seq, _ in loaded.updates] == [5, 6]
    assert loaded.last_seq == 6
    assert _text(loaded.snapshot, loaded.updates) == "0 1 2 3 4 5 "
    with pytest.raises(SequenceTaken):
        await documents.append(ws, "a.txt", 6, updates[0])


async def test_synced_contents_are_recorded_and_replaced(
    store: tuple[DocumentStore, str],
) -> None:
    documents, ws = store
    await documents.mark_synced(ws, "a.txt", ("absent", "sha-1"))
    loaded = await documents.load(ws, "a.txt")
    assert loaded is not None
    assert loaded.synced == ("absent", "sha-1")
    assert loaded.updates == ()
    (update,) = _updates(1)
    await documents.append(ws, "a.txt", 1, update)
    assert (await documents.load(ws, "a.txt")).synced == ("absent", "sha-1")  # type: ignore[union-attr]
    await documents.append(ws, "a.txt", 2, update, synced=("sha-2",))
    assert (await documents.load(ws, "a.txt")).synced == ("sha-2",)  # type: ignore[union-attr]


async def test_a_deleted_document_is_gone_and_can_start_over(
    store: tuple[DocumentStore, str],
) -> None:
    documents, ws = store
    first, second = _updates(2)
    await documents.append(ws, "a.txt", 1, first)
    await documents.delete(ws, "a.txt")
    assert await documents.load(ws, "a.txt") is None
    await documents.append(ws, "a.txt", 1, first)
    await documents.append(ws, "a.txt", 2, second)
    loaded = await documents.load(ws, "a.txt")
    assert loaded is not None
    assert _text(loaded.snapshot, loaded.updates) == "0 1 "
