"""Workspace records and who may see them: creation, listing, renaming, soft deletion, members.

A plain async class over the database. Every lookup is scoped to the caller: a workspace that
does not exist, is deleted, or that the caller is not a member of raises the same
``WorkspaceNotFound``, so the answer never reveals that someone else's workspace exists.
The files of a workspace are not touched here: they change only through a ``WorkspaceWriter``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from accounts.errors import PermissionDenied
from accounts.policy import can
from actors.workspace.api import WorkspaceError, WorkspaceNotFound
from state.db import Database
from state.models import Membership, User, Workspace, new_id, utcnow

__all__ = [
    "InvalidTransfer",
    "InvalidWorkspaceName",
    "MemberNotFound",
    "MemberRecord",
    "Role",
    "WorkspaceCatalog",
    "WorkspaceRecord",
    "can_manage",
    "can_write",
    "clean_name",
]

Role = Literal["owner", "admin", "editor", "viewer"]
ROLES: frozenset[str] = frozenset(get_args(Role))
MAX_NAME_CHARS = 200


def can_write(role: str) -> bool:
    """True for roles that may change a workspace's files (a viewer only reads).

    Answered by the one permission policy, ``accounts.policy``."""
    return can(role, "edit")


def can_manage(role: str) -> bool:
    """True for roles that may delete the workspace and change its members."""
    return can(role, "manage_members") and can(role, "delete")


class InvalidWorkspaceName(WorkspaceError):
    """A name that is empty after stripping or longer than 200 characters."""


class MemberNotFound(WorkspaceError):
    """No account with that email, or that user is not a member."""


class InvalidTransfer(WorkspaceError):
    """Transferring a workspace to the member who already owns it."""


@dataclass(frozen=True, slots=True)
class WorkspaceRecord:
    """A workspace as one member sees it: ``role`` is that member's role."""

    id: str
    name: str
    template: str
    owner_id: str
    created_at: datetime
    updated_at: datetime
    role: str
    head_version: int
    total_bytes: int

    @classmethod
    def of(cls, workspace: Workspace, role: str) -> WorkspaceRecord:
        return cls(
            id=workspace.id,
            name=workspace.name,
            template=workspace.template,
            owner_id=workspace.owner_id,
            created_at=workspace.created_at,
            updated_at=workspace.updated_at,
            role=role,
            head_version=workspace.head_version,
            total_bytes=workspace.total_bytes,
        )


@dataclass(frozen=True, slots=True)
class MemberRecord:
    user_id: str
    email: str
    name: str
    role: str
    created_at: datetime


def clean_name(name: str) -> str:
    """``name`` stripped; raise ``InvalidWorkspaceName`` if empty or over 200 characters."""
    cleaned = name.strip()
    if not cleaned:
        raise InvalidWorkspaceName("The workspace name must not be empty.")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidWorkspaceName(
            f"The workspace name must be at most {MAX_NAME_CHARS} characters."
        )
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in cleaned):
        raise InvalidWorkspaceName("The workspace name must not contain control characters.")
    return cleaned


class WorkspaceCatalog:
    """Workspace rows and memberships; every read is scoped to a calling user.

    ``on_change`` listeners hear the id of every workspace whose memberships or existence this
    catalog changes (a role cache drops its entries for it)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.on_change: list[Callable[[str], None]] = []

    def _changed(self, workspace_id: str) -> None:
        for listener in self.on_change:
            listener(workspace_id)

    async def create(self, owner_id: str, *, name: str, template: str) -> WorkspaceRecord:
        """Create the workspace and its owner's membership in one transaction (no files yet)."""
        now = utcnow()
        workspace = Workspace(
            id=new_id(),
            name=clean_name(name),
            template=template,
            owner_id=owner_id,
            created_at=now,
            updated_at=now,
            head_version=0,
            total_bytes=0,
        )
        async with self._db.session() as session, session.begin():
            session.add(workspace)
            await session.flush()
            session.add(
                Membership(
                    id=new_id(),
                    workspace_id=workspace.id,
                    user_id=owner_id,
                    role="owner",
                    created_at=now,
                )
            )
        return WorkspaceRecord.of(workspace, "owner")

    async def list_for(self, user_id: str) -> list[WorkspaceRecord]:
        """The live workspaces ``user_id`` is a member of, newest first, with their role."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(Workspace, Membership.role)
                .join(Membership, Membership.workspace_id == Workspace.id)
                .where(Membership.user_id == user_id, Workspace.deleted_at.is_(None))
                .order_by(Workspace.created_at.desc(), Workspace.id)
            )
            return [WorkspaceRecord.of(workspace, role) for workspace, role in rows.all()]

    async def role_of(self, user_id: str, workspace_id: str) -> str:
        """The role of ``user_id`` in the workspace, without loading the workspace's record.

        Raise ``WorkspaceNotFound`` alike when it does not exist, is deleted, or the user is
        not a member.
        """
        async with self._db.session() as session:
            role = await session.scalar(
                select(Membership.role)
                .join(Workspace, Workspace.id == Membership.workspace_id)
                .where(
                    Membership.workspace_id == workspace_id,
                    Membership.user_id == user_id,
                    Workspace.deleted_at.is_(None),
                )
            )
        if role is None:
            raise WorkspaceNotFound(f"No workspace {workspace_id[:64]!r}.")
        return role

    async def get_for(self, user_id: str, workspace_id: str) -> WorkspaceRecord:
        """The workspace as ``user_id`` sees it.

        Raise ``WorkspaceNotFound`` alike when it does not exist, is deleted, or the user is
        not a member.
        """
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Workspace, Membership.role)
                    .join(Membership, Membership.workspace_id == Workspace.id)
                    .where(
                        Workspace.id == workspace_id,
                        Membership.user_id == user_id,
                        Workspace.deleted_at.is_(None),
                    )
                )
            ).first()
        if row is None:
            raise WorkspaceNotFound(f"No workspace {workspace_id[:64]!r}.")
        workspace, role = row
        return WorkspaceRecord.of(workspace, role)

    async def rename(self, user_id: str, workspace_id: str, *, name: str) -> WorkspaceRecord:
        """Rename; members who may write may rename. Viewers get ``PermissionDenied``."""
        cleaned = clean_name(name)
        record = await self.get_for(user_id, workspace_id)
        if not can_write(record.role):
            raise PermissionDenied("Viewers cannot rename this workspace.")
        now = utcnow()
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(Workspace)
                .where(Workspace.id == workspace_id, Workspace.deleted_at.is_(None))
                .values(name=cleaned, updated_at=now)
            )
        return await self.get_for(user_id, workspace_id)

    async def soft_delete(self, user_id: str, workspace_id: str) -> WorkspaceRecord:
        """Mark deleted (its files and versions are purged after the grace period).

        Only an owner or admin may delete; other members get ``PermissionDenied``.
        """
        record = await self.get_for(user_id, workspace_id)
        if not can_manage(record.role):
            raise PermissionDenied("Only the workspace's owner or an admin can delete it.")
        await self.mark_deleted(workspace_id)
        return record

    async def mark_deleted(self, workspace_id: str) -> None:
        """Soft-delete without an access check (e.g. to undo a creation that failed midway)."""
        now = utcnow()
        async with self._db.session() as session, session.begin():
            await session.execute(
                update(Workspace)
                .where(Workspace.id == workspace_id, Workspace.deleted_at.is_(None))
                .values(deleted_at=now, updated_at=now)
            )
        self._changed(workspace_id)

    # -- members ------------------------------------------------------------------------------

    async def list_members(self, user_id: str, workspace_id: str) -> list[MemberRecord]:
        await self.get_for(user_id, workspace_id)
        async with self._db.session() as session:
            rows = await session.execute(
                select(Membership, User)
                .join(User, User.id == Membership.user_id)
                .where(Membership.workspace_id == workspace_id)
                .order_by(Membership.created_at, User.email)
            )
            return [_member(membership, user) for membership, user in rows.all()]

    async def set_member(
        self, user_id: str, workspace_id: str, *, email: str, role: str
    ) -> MemberRecord:
        """Add the account with ``email`` as a member, or change its role.

        Only owners and admins manage members; nobody becomes or stops being the owner here.
        """
        record = await self.get_for(user_id, workspace_id)
        if not can_manage(record.role):
            raise PermissionDenied("Only the workspace's owner or an admin can manage members.")
        if role not in ROLES or role == "owner":
            raise PermissionDenied(f"Role {role[:40]!r} cannot be granted.")
        async with self._db.session() as session, session.begin():
            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None:
                raise MemberNotFound("No account has that email.")
            membership = await session.scalar(
                select(Membership).where(
                    Membership.workspace_id == workspace_id, Membership.user_id == user.id
                )
            )
            if membership is None:
                membership = Membership(
                    id=new_id(),
                    workspace_id=workspace_id,
                    user_id=user.id,
                    role=role,
                    created_at=utcnow(),
                )
                session.add(membership)
            elif membership.role == "owner":
                raise PermissionDenied("The owner's role cannot be changed.")
            else:
                membership.role = role
            try:
                await session.flush()
            except IntegrityError as exc:  # a concurrent add of the same member
                raise PermissionDenied("That member was changed concurrently; retry.") from exc
            member = _member(membership, user)
        self._changed(workspace_id)
        return member

    async def remove_member(self, user_id: str, workspace_id: str, member_id: str) -> None:
        """Remove a member (owners and admins; anyone may remove themselves, except the owner)."""
        record = await self.get_for(user_id, workspace_id)
        if member_id != user_id and not can_manage(record.role):
            raise PermissionDenied("Only the workspace's owner or an admin can remove members.")
        async with self._db.session() as session, session.begin():
            membership = await session.scalar(
                select(Membership).where(
                    Membership.workspace_id == workspace_id, Membership.user_id == member_id
                )
            )
            if membership is None:
                raise MemberNotFound("That user is not a member of this workspace.")
            if membership.role == "owner":
                raise PermissionDenied("The owner cannot be removed.")
            await session.delete(membership)
        self._changed(workspace_id)

    async def transfer_ownership(
        self,
        user_id: str,
        workspace_id: str,
        *,
        new_owner_id: str | None = None,
        new_owner_email: str | None = None,
    ) -> tuple[WorkspaceRecord, MemberRecord]:
        """Make another member the owner; the previous owner stays on as an admin.

        Only the owner may (``PermissionDenied`` otherwise). The new owner, named by user id or
        email, must already be a member (``MemberNotFound`` otherwise: invite them first).
        Return the workspace as ``user_id`` now sees it and the new owner's membership.
        """
        record = await self.get_for(user_id, workspace_id)
        if not can(record.role, "transfer"):
            raise PermissionDenied("Only the workspace's owner can transfer it.")
        named = (
            User.id == new_owner_id
            if new_owner_id is not None
            else User.email == (new_owner_email or "").strip().lower()
        )
        async with self._db.session() as session, session.begin():
            # The row lock serializes concurrent transfers of one workspace.
            workspace = await session.get(Workspace, workspace_id, with_for_update=True)
            if workspace is None or workspace.deleted_at is not None:
                raise WorkspaceNotFound(f"No workspace {workspace_id[:64]!r}.")
            if workspace.owner_id != user_id:  # another transfer won the race
                raise PermissionDenied("Only the workspace's owner can transfer it.")
            found = (
                await session.execute(
                    select(Membership, User)
                    .join(User, User.id == Membership.user_id)
                    .where(
                        Membership.workspace_id == workspace_id,
                        User.deleted_at.is_(None),
                        named,
                    )
                )
            ).first()
            if found is None:
                raise MemberNotFound("The new owner must already be a member of this workspace.")
            membership, new_owner = found
            if new_owner.id == user_id:
                raise InvalidTransfer("You already own this workspace.")
            previous = await session.scalar(
                select(Membership).where(
                    Membership.workspace_id == workspace_id, Membership.user_id == user_id
                )
            )
            if previous is not None:
                previous.role = "admin"
            membership.role = "owner"
            workspace.owner_id = new_owner.id
            workspace.updated_at = utcnow()
            new_member = _member(membership, new_owner)
        self._changed(workspace_id)
        return await self.get_for(user_id, workspace_id), new_member


def _member(membership: Membership, user: User) -> MemberRecord:
    return MemberRecord(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=membership.role,
        created_at=membership.created_at,
    )
