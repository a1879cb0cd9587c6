"""Organisations, their members, and invitations by email to an organisation or a workspace.

An invitation link carries a signed token (HS256, its own audience) naming the invitation row;
accepting marks the row used, so a token works once, only before it expires, and only for the
account whose email it was sent to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import jwt
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from accounts.errors import InvitationInvalid, OrgMemberNotFound, OrgNotFound, PermissionDenied
from accounts.mail import Mailer, OutgoingMail
from accounts.policy import ORG_ROLES, can_org
from accounts.service import normalize_email
from accounts.settings import AuthSettings
from state.db import Database
from state.models import (
    Invitation,
    Membership,
    Organization,
    OrgMembership,
    User,
    Workspace,
    new_id,
    utcnow,
)

__all__ = ["AcceptedInvitation", "OrgMember", "OrgRecord", "OrgService"]

INVITATION_AUDIENCE = "vibecode-invitation"
WORKSPACE_INVITABLE = frozenset({"admin", "editor", "viewer"})
ORG_INVITABLE = frozenset({"admin", "member"})


@dataclass(frozen=True, slots=True)
class OrgRecord:
    id: str
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OrgMember:
    user_id: str
    email: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class AcceptedInvitation:
    kind: str
    target_id: str
    role: str


class OrgService:
    def __init__(self, db: Database, settings: AuthSettings, mailer: Mailer) -> None:
        if settings.jwt_secret is None:
            raise ValueError("AuthSettings.jwt_secret must be resolved before use")
        self._db = db
        self._settings = settings
        self._mailer = mailer
        self._key = settings.jwt_secret.get_secret_value()

    async def create(self, user_id: str, *, name: str) -> OrgRecord:
        cleaned = name.strip()[:200] or "Organisation"
        org = Organization(id=new_id(), name=cleaned, created_by=user_id, created_at=utcnow())
        async with self._db.session() as session, session.begin():
            session.add(org)
            await session.flush()
            session.add(OrgMembership(id=new_id(), org_id=org.id, user_id=user_id, role="owner"))
        return OrgRecord(id=org.id, name=org.name, role="owner", created_at=org.created_at)

    async def list_for(self, user_id: str) -> list[OrgRecord]:
        async with self._db.session() as session:
            rows = await session.execute(
                select(Organization, OrgMembership.role)
                .join(OrgMembership, OrgMembership.org_id == Organization.id)
                .where(OrgMembership.user_id == user_id)
                .order_by(Organization.created_at)
            )
            return [
                OrgRecord(id=org.id, name=org.name, role=role, created_at=org.created_at)
                for org, role in rows.all()
            ]

    async def get_for(self, user_id: str, org_id: str) -> OrgRecord:
        """The organisation as a member sees it; ``OrgNotFound`` for everyone else."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(Organization, OrgMembership.role)
                    .join(OrgMembership, OrgMembership.org_id == Organization.id)
                    .where(Organization.id == org_id, OrgMembership.user_id == user_id)
                )
            ).first()
        if row is None:
            raise OrgNotFound()
        org, role = row
        return OrgRecord(id=org.id, name=org.name, role=role, created_at=org.created_at)

    async def members(self, user_id: str, org_id: str) -> list[OrgMember]:
        await self.get_for(user_id, org_id)
        async with self._db.session() as session:
            rows = await session.execute(
                select(OrgMembership, User)
                .join(User, User.id == OrgMembership.user_id)
                .where(OrgMembership.org_id == org_id)
                .order_by(OrgMembership.created_at)
            )
            return [
                OrgMember(user_id=u.id, email=u.email, name=u.name, role=m.role)
                for m, u in rows.all()
            ]

    async def remove_member(self, user_id: str, org_id: str, member_id: str) -> None:
        record = await self.get_for(user_id, org_id)
        if member_id != user_id and not can_org(record.role, "manage_members"):
            raise PermissionDenied("Only the organisation's owner or an admin can remove members.")
        async with self._db.session() as session, session.begin():
            membership = await session.scalar(
                select(OrgMembership).where(
                    OrgMembership.org_id == org_id, OrgMembership.user_id == member_id
                )
            )
            if membership is None:
                raise OrgMemberNotFound()
            if membership.role == "owner":
                raise PermissionDenied("The owner cannot be removed.")
            await session.delete(membership)

    # -- invitations ---------------------------------------------------------------------------

    async def invite(
        self, *, kind: str, target_id: str, target_name: str, email: str, role: str, by: str
    ) -> str:
        """Create an invitation and email its link; return the invitation id.

        The caller has checked that ``by`` may manage the target's members.
        """
        allowed = ORG_INVITABLE if kind == "org" else WORKSPACE_INVITABLE
        if role not in allowed:
            raise PermissionDenied(f"Role {role[:40]!r} cannot be granted by invitation.")
        address = normalize_email(email)
        now = utcnow()
        invitation = Invitation(
            id=new_id(),
            kind=kind,
            target_id=target_id,
            email=address,
            role=role,
            invited_by=by,
            created_at=now,
            expires_at=now + timedelta(seconds=self._settings.invitation_ttl_s),
        )
        async with self._db.session() as session, session.begin():
            session.add(invitation)
        token = jwt.encode(
            {
                "sub": invitation.id,
                "aud": INVITATION_AUDIENCE,
                "iss": self._settings.jwt_issuer,
                "iat": int(time.time()),
                "exp": int(time.time()) + self._settings.invitation_ttl_s,
            },
            self._key,
            algorithm="HS256",
        )
        link = f"{self._settings.public_url.rstrip('/')}/invitations?token={quote(token)}"
        what = "organisation" if kind == "org" else "workspace"
        await self._mailer.send(
            OutgoingMail(
                to=address,
                subject=f"You are invited to the {what} {target_name[:100]}",
                body=(
                    f"You were invited to the {what} {target_name[:100]!r} as {role}.\n\n"
                    f"Open {link}\n\nor send this token to POST /api/invitations/accept:\n"
                    f"{token}\n"
                ),
            )
        )
        return invitation.id

    async def accept(self, user_id: str, token: str) -> AcceptedInvitation:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=["HS256"],
                audience=INVITATION_AUDIENCE,
                issuer=self._settings.jwt_issuer,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.PyJWTError as exc:
            raise InvitationInvalid() from exc
        now = utcnow()
        try:
            async with self._db.session() as session, session.begin():
                invitation = await session.get(Invitation, str(claims["sub"]))
                user = await session.get(User, user_id)
                if (
                    invitation is None
                    or user is None
                    or invitation.accepted_at is not None
                    or invitation.expires_at <= now
                ):
                    raise InvitationInvalid()
                if invitation.email != user.email:
                    raise InvitationInvalid("This invitation was sent to another email address.")
                claimed = await session.execute(
                    update(Invitation)
                    .where(Invitation.id == invitation.id, Invitation.accepted_at.is_(None))
                    .values(accepted_at=now, accepted_by=user_id)
                )
                if claimed.rowcount == 0:  # type: ignore[attr-defined]
                    raise InvitationInvalid()
                await self._grant(session, invitation, user_id)
                return AcceptedInvitation(
                    kind=invitation.kind, target_id=invitation.target_id, role=invitation.role
                )
        except IntegrityError as exc:
            raise InvitationInvalid("You are already a member.") from exc

    @staticmethod
    async def _grant(session: object, invitation: Invitation, user_id: str) -> None:
        from sqlalchemy.ext.asyncio import AsyncSession

        assert isinstance(session, AsyncSession)
        if invitation.kind == "org":
            assert invitation.role in ORG_ROLES
            existing = await session.scalar(
                select(OrgMembership).where(
                    OrgMembership.org_id == invitation.target_id,
                    OrgMembership.user_id == user_id,
                )
            )
            if existing is None:
                session.add(
                    OrgMembership(
                        id=new_id(),
                        org_id=invitation.target_id,
                        user_id=user_id,
                        role=invitation.role,
                    )
                )
            return
        workspace = await session.get(Workspace, invitation.target_id)
        if workspace is None or workspace.deleted_at is not None:
            raise InvitationInvalid("The workspace no longer exists.")
        existing_ws = await session.scalar(
            select(Membership).where(
                Membership.workspace_id == invitation.target_id, Membership.user_id == user_id
            )
        )
        if existing_ws is None:
            session.add(
                Membership(
                    id=new_id(),
                    workspace_id=invitation.target_id,
                    user_id=user_id,
                    role=invitation.role,
                    created_at=utcnow(),
                )
            )
        elif existing_ws.role != "owner":
            existing_ws.role = invitation.role
