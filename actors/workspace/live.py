"""LiveDocuments: the live (CRDT) documents of one workspace, owned by its WorkspaceSession.

Each open text file is a ``collab.TextDocument``. An edit from a client is applied, appended to
the document's update log (durable) and only then acknowledged and fanned out. Typing becomes a
file version ``collab_flush_delay_s`` after the last edit, or ``collab_flush_max_delay_s`` after
the first unsaved one while typing goes on (author: the last editor), through the session like
any other write; a write from elsewhere (files API, sandbox, agent) arrives as a
commit of the session and is turned into a minimal text edit of the document, so editors see it.

Crash safety: the document store records which file contents (sha256) the document accounts
for (``synced``). Before a flush it records both the current (``absent`` when there is no file
yet) and the new contents, so on the next load a file whose contents are in ``synced`` is behind
the document (flush it again), and any other contents were written from elsewhere (edit the
document into them).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from actors.workspace.api import Author, WorkspaceError
from actors.workspace.manifest import Entry
from actors.workspace.paths import validate_path
from actors.workspace.session import SessionClosed, WorkspaceSession
from actors.workspace.settings import WorkspaceSettings
from collab.document import TextDocument
from collab.errors import MalformedMessage
from collab.persistence import DocumentStore
from collab.protocol import (
    AWARENESS,
    SYNC,
    SyncType,
    decode_message,
    encode_permission_denied,
    encode_sync_step1,
    encode_sync_step2,
    encode_update,
)
from state.blobs import BlobStore
from state.errors import StateError

__all__ = ["Broadcast", "CollabReply", "DocumentNotText", "InvalidCollabMessage", "LiveDocuments"]

# (workspace_id, path, y-protocols message) -> delivered to every client of the document.
Broadcast = Callable[[str, str, bytes], Awaitable[None]]

log = structlog.get_logger("actors.workspace.live")
_SYSTEM = Author(user_id=None, kind="system")
# Stands for "the file does not exist" in ``synced`` (a flush that creates the file records it).
_ABSENT = "absent"
# A Yjs v1 update with no items and no deletions.
_EMPTY_UPDATE = b"\x00\x00"


class DocumentNotText(WorkspaceError):
    """The file is not UTF-8 text, so it cannot be edited live."""


class InvalidCollabMessage(WorkspaceError):
    """A malformed y-protocols message or Yjs update."""


@dataclass(frozen=True, slots=True)
class CollabReply:
    """What answering one client message produced.

    ``replies`` go back to the sender; ``broadcast`` (an update message) to every other client
    of the document; ``acked`` counts the sender's updates now durable; ``denied`` is True when
    the sender may not edit and its update was dropped (``replies`` then says so).
    """

    replies: tuple[bytes, ...] = ()
    broadcast: bytes | None = None
    acked: int = 0
    denied: bool = False
    # True when the owner already sent ``broadcast`` to every replica: deliver it locally only.
    published: bool = False


@dataclass(eq=False)
class _LiveDocument:
    path: str
    doc: TextDocument = field(default_factory=TextDocument)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seq: int = 0
    snapshot_seq: int = 0
    synced: tuple[str, ...] = ()
    dirty_author: Author | None = None
    # Monotonic times of the first edit not yet in a version and of the last edit.
    dirty_since: float = 0.0
    last_edit: float = 0.0
    # Contents (sha256) of our own flushes whose commits the session has not yet reported.
    own_flushes: list[str] = field(default_factory=list)
    flush_task: asyncio.Task[None] | None = None
    loaded: bool = False
    # Stored updates with items still waiting for their predecessors: until they integrate,
    # the update log is not compacted (a snapshot would leave them out).
    waiting: list[bytes] = field(default_factory=list)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LiveDocuments:
    def __init__(
        self,
        session: WorkspaceSession,
        *,
        store: DocumentStore,
        blobs: BlobStore,
        settings: WorkspaceSettings,
        broadcast: Broadcast | None = None,
    ) -> None:
        """``broadcast`` fans an update message out to the document's clients (the edits that
        file writes make); without it, clients see those edits when they next resync."""
        self.session = session
        self._broadcast = broadcast
        self.workspace_id = session.workspace_id
        self._store = store
        self._blobs = blobs
        self._flush_delay_s = settings.collab_flush_delay_s
        self._flush_max_delay_s = settings.collab_flush_max_delay_s
        self._compact_every = settings.collab_compact_every
        self._docs: dict[str, _LiveDocument] = {}
        self._closed = False

    # --- the collaboration operations --------------------------------------------------------

    async def open(self, path: str) -> bytes:
        """The server's sync step 1 (its state vector) for a client that just connected."""
        live = await self._document(path)
        async with live.lock:
            return encode_sync_step1(live.doc.state_vector())

    async def receive(
        self, path: str, message: bytes, *, user_id: str, can_write: bool
    ) -> CollabReply:
        """Answer one client message. Updates are durable before this returns (the ack)."""
        try:
            decoded = decode_message(message)
        except MalformedMessage as exc:
            raise InvalidCollabMessage(exc.detail) from None
        if decoded.kind == AWARENESS:
            return CollabReply()  # Ephemeral: the transport fans it out itself.
        if decoded.kind != SYNC:
            return CollabReply()
        live = await self._document(path)
        async with live.lock:
            self._check_open()
            if decoded.sync_type == SyncType.STEP1:
                try:
                    missing = live.doc.encode_state(decoded.payload)
                except MalformedMessage as exc:
                    raise InvalidCollabMessage(exc.detail) from None
                return CollabReply(replies=(encode_sync_step2(missing),))
            if not can_write:
                if self._would_change(live, decoded.payload):
                    reason = "Your role in this workspace is read-only; the edit was not applied."
                    return CollabReply(replies=(encode_permission_denied(reason),), denied=True)
                return CollabReply()
            replies, fan_out = await self._apply(
                live, decoded.payload, user_id, replay=decoded.sync_type == SyncType.UPDATE
            )
        self.session.last_used_monotonic = time.monotonic()
        if fan_out is None:
            return CollabReply(replies=replies, acked=1)
        broadcast = encode_update(fan_out)
        published = False
        if self._broadcast is not None:
            # The owner publishes too, so the edit reaches every replica even if the replica
            # that received it dies before fanning it out.
            try:
                await self._broadcast(self.workspace_id, path, broadcast)
                published = True
            except StateError as exc:
                log.warning(
                    "collab.broadcast_failed", workspace_id=self.workspace_id, error=str(exc)
                )
        return CollabReply(replies=replies, broadcast=broadcast, acked=1, published=published)

    async def _apply(
        self, live: _LiveDocument, update: bytes, user_id: str, *, replay: bool
    ) -> tuple[tuple[bytes, ...], bytes | None]:
        """Apply a writer's update durably (under the document's lock); return the replies to
        its sender and the update to fan out to the other editors (None: nothing to send).

        ``replay``: fan a known update out again (see below); otherwise only one with items."""
        try:
            change = live.doc.apply_update(update)
            waiting = live.doc.lacks_dependencies(update)
        except MalformedMessage as exc:
            raise InvalidCollabMessage(exc.detail) from None
        if waiting:
            # Items whose predecessors never reached us (the sender had them from elsewhere):
            # store the update itself, so it is durable and replayed on load, and ask the
            # sender (sync step 1) for what we lack. Integrated parts fan out as usual.
            log.warning("collab.update_waiting", workspace_id=self.workspace_id, path=live.path)
            await self._persist(live, update)
            live.waiting.append(update)
            if change is not None:
                self._schedule_flush(live, Author(user_id=user_id, kind="user"))
            return (encode_sync_step1(live.doc.state_vector()),), change
        if change is None:
            # Nothing new: a retry after the owner died, or a reconnecting client's step 2. The
            # first delivery may have been made durable by an owner that died before it was
            # fanned out, so send it on again (editors that have it ignore it). A step 2 holds
            # the sender's whole delete set: sent on only if it has items too, so reconnects
            # do not flood the document's editors.
            if update == _EMPTY_UPDATE or not (replay or update[0] != 0):
                return (), None
            return (), update
        await self._persist(live, change)
        if live.waiting:
            live.waiting = [u for u in live.waiting if live.doc.lacks_dependencies(u)]
        self._schedule_flush(live, Author(user_id=user_id, kind="user"))
        return (), change

    @property
    def open_documents(self) -> int:
        return len(self._docs)

    async def text(self, path: str) -> str:
        live = await self._document(path)
        async with live.lock:
            return live.doc.text

    # --- hooks from the session ---------------------------------------------------------------

    async def file_committed(
        self, changes: Mapping[str, Entry | None], contents: Mapping[str, bytes], author: Author
    ) -> None:
        """A version was committed: edit open documents into their files' new contents.

        Runs before the session's next operation (inside its write lock or just after it);
        never raises (the version is already durable, and a document that cannot follow is
        dropped and reconciled on its next load).
        """
        for path, entry in changes.items():
            live = self._docs.get(path)
            if live is None or not live.loaded:
                continue
            try:
                async with live.lock:
                    await self._follow_file(live, entry, contents.get(path))
            except Exception as exc:  # noqa: BLE001 - reconciled from durable state on reload
                log.warning("collab.follow_failed", workspace_id=self.workspace_id, error=repr(exc))
                self._forget(live)

    # --- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Flush every pending edit to its file, then stop (called before the session closes)."""
        for live in list(self._docs.values()):
            if live.flush_task is not None:
                live.flush_task.cancel()
                await asyncio.wait([live.flush_task])
                live.flush_task = None
            if live.dirty_author is not None:
                with contextlib.suppress(WorkspaceError):
                    await self._flush(live)
        self._closed = True
        self._docs.clear()

    def abandon(self) -> None:
        """Stop at once (the session lost its lease): pending flushes happen on the next load."""
        self._closed = True
        for live in self._docs.values():
            if live.flush_task is not None:
                live.flush_task.cancel()
        self._docs.clear()

    # --- internals ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed or self.session.closed:
            raise SessionClosed(f"live documents of {self.workspace_id} are closed")

    def _forget(self, live: _LiveDocument) -> None:
        if self._docs.get(live.path) is live:
            del self._docs[live.path]
        if live.flush_task is not None:
            live.flush_task.cancel()

    async def _document(self, path: str) -> _LiveDocument:
        self._check_open()
        path = validate_path(path)
        live = self._docs.get(path)
        if live is not None and live.loaded:
            return live
        if live is None:
            live = self._docs[path] = _LiveDocument(path)
        async with live.lock:
            if not live.loaded:
                try:
                    await self._load(live)
                except BaseException:
                    self._forget(live)
                    raise
                live.loaded = True
        return live

    async def _file_text(self, entry: Entry | None, path: str) -> str:
        if entry is None:
            return ""
        data = await self._blobs.get(entry.sha256)
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise DocumentNotText(f"{path!r} is not UTF-8 text") from None

    async def _load(self, live: _LiveDocument) -> None:
        path = live.path
        entry = self.session.manifest.get(path)
        file_sha = entry.sha256 if entry is not None else None
        stored = await self._store.load(self.workspace_id, path)
        if stored is None:
            text = await self._file_text(entry, path)
            change = live.doc.set_text(text)
            synced = (file_sha,) if file_sha else ()
            if change is None:
                await self._store.mark_synced(self.workspace_id, path, synced)
                live.synced = synced
            else:
                await self._persist(live, change, synced=synced)
            return
        if stored.snapshot is not None:
            live.doc.apply_update(stored.snapshot)
        for _, update in stored.updates:
            live.doc.apply_update(update)
        live.waiting = [u for _, u in stored.updates if live.doc.lacks_dependencies(u)]
        live.seq = stored.last_seq
        live.snapshot_seq = stored.snapshot_seq
        live.synced = stored.synced
        text_sha = _sha(live.doc.text.encode())
        if text_sha == file_sha:
            return
        if (file_sha or _ABSENT) in stored.synced or (file_sha is None and not stored.synced):
            # The document is ahead of its file (a flush was lost): flush again.
            self._schedule_flush(live, _SYSTEM)
            return
        # The file was written from elsewhere while the document was not open.
        await self._follow_file(live, entry, None)

    async def _follow_file(
        self, live: _LiveDocument, entry: Entry | None, data: bytes | None
    ) -> None:
        """Edit the document into the file's contents (the caller holds ``live.lock``)."""
        if entry is not None and entry.sha256 in live.own_flushes:
            # Our own flush: the document already holds (at least) this text, and maybe more
            # typed since; following it would undo that typing.
            live.own_flushes.remove(entry.sha256)
            return
        if entry is not None and data is not None:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = ""
        else:
            text = await self._file_text(entry, live.path)
        synced = (entry.sha256,) if entry is not None else ()
        change = live.doc.set_text(text)
        if change is None:
            await self._store.mark_synced(self.workspace_id, live.path, synced)
            live.synced = synced
            return
        await self._persist(live, change, synced=synced)
        live.dirty_author = None
        if self._broadcast is not None:
            try:
                await self._broadcast(self.workspace_id, live.path, encode_update(change))
            except StateError as exc:  # Editors get it when they resync; it is durable.
                log.warning(
                    "collab.broadcast_failed", workspace_id=self.workspace_id, error=str(exc)
                )

    def _would_change(self, live: _LiveDocument, update: bytes) -> bool:
        if update == _EMPTY_UPDATE:
            return False
        probe = TextDocument()
        probe.apply_update(live.doc.encode_state())
        try:
            return probe.apply_update(update) is not None
        except MalformedMessage:
            return True

    async def _persist(
        self, live: _LiveDocument, change: bytes, *, synced: tuple[str, ...] | None = None
    ) -> None:
        try:
            await self._store.append(
                self.workspace_id, live.path, live.seq + 1, change, synced=synced
            )
        except BaseException:
            # The update is in memory but not durable: forget the document, so the next call
            # reloads it from the store (the client re-sends what is missing when it resyncs).
            self._forget(live)
            raise
        live.seq += 1
        if synced is not None:
            live.synced = synced

    def _schedule_flush(self, live: _LiveDocument, author: Author) -> None:
        live.last_edit = time.monotonic()
        if live.dirty_author is None:
            live.dirty_since = live.last_edit
        live.dirty_author = author
        if live.flush_task is None or live.flush_task.done():
            live.flush_task = asyncio.create_task(
                self._flush_later(live), name=f"flush-{self.workspace_id}"
            )

    async def _flush_later(self, live: _LiveDocument) -> None:
        try:
            while live.dirty_author is not None and not self._closed:
                await self._quiet_or_due(live)
                await self._flush(live)
                await self._maybe_compact(live)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - retried on the next edit or load
            log.warning("collab.flush_failed", workspace_id=self.workspace_id, error=repr(exc))
        finally:
            if live.flush_task is asyncio.current_task():
                live.flush_task = None

    async def _quiet_or_due(self, live: _LiveDocument) -> None:
        """Wait until nobody typed for the flush delay, or the oldest unsaved edit is due.

        (Every version commit holds the database's write lock for a while, during which
        keystrokes wait to be made durable: one version per pause, not per 0.3 s of typing.)"""
        while True:
            wake = min(
                live.last_edit + self._flush_delay_s, live.dirty_since + self._flush_max_delay_s
            )
            now = time.monotonic()
            if now >= wake:
                return
            await asyncio.sleep(wake - now)

    async def _flush(self, live: _LiveDocument) -> None:
        async with live.lock:
            author, live.dirty_author = live.dirty_author, None
            if author is None:
                return
            data = live.doc.text.encode()
            sha = _sha(data)
            entry = self.session.manifest.get(live.path)
            if entry is not None and entry.sha256 == sha:
                return
            # Record the intent first: after a crash either contents mean "document is ahead".
            synced = (entry.sha256 if entry else _ABSENT, sha)
            await self._store.mark_synced(self.workspace_id, live.path, synced)
            live.synced = synced
            live.own_flushes.append(sha)
        try:
            result = await self.session.write_file(live.path, data, if_match=None, author=author)
        except BaseException:
            if sha in live.own_flushes:
                live.own_flushes.remove(sha)
            if live.dirty_author is None:
                live.dirty_author = author
            raise
        if not result.changed and sha in live.own_flushes:
            live.own_flushes.remove(sha)  # No version, so no commit will be reported.

    async def _maybe_compact(self, live: _LiveDocument) -> None:
        if live.seq - live.snapshot_seq < self._compact_every or live.waiting:
            return
        async with live.lock:
            snapshot, through = live.doc.encode_state(), live.seq
            await self._store.compact(self.workspace_id, live.path, snapshot, through_seq=through)
            live.snapshot_seq = through
