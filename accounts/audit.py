"""The audit trail: append-only records of security-relevant events.

There is no update or delete here and no route reaches one: records are only added and read.
Recording never fails the action it records (a failed insert is logged), except that callers
may await it before answering so the record exists when the response arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from state.db import Database
from state.models import AuditLog

__all__ = ["AuditContext", "AuditEvent", "AuditTrail"]

log = structlog.get_logger("accounts.audit")
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Where an action came from: who, from which address, in which request."""

    actor_id: str | None = None
    ip: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    created_at: datetime
    actor_id: str | None
    action: str
    target_type: str | None
    target_id: str | None
    workspace_id: str | None
    ip: str | None
    request_id: str | None
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: AuditLog) -> AuditEvent:
        return cls(
            id=row.id,
            created_at=row.created_at,
            actor_id=row.actor_id,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            workspace_id=row.workspace_id,
            ip=row.ip,
            request_id=row.request_id,
            outcome=row.outcome,
            details=dict(row.details or {}),
        )


class AuditTrail:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        action: str,
        context: AuditContext,
        *,
        target_type: str | None = None,
        target_id: str | None = None,
        workspace_id: str | None = None,
        outcome: str = "success",
        details: dict[str, Any] | None = None,
    ) -> None:
        row = AuditLog(
            actor_id=context.actor_id,
            action=action,
            target_type=target_type,
            target_id=target_id,
            workspace_id=workspace_id,
            ip=context.ip,
            request_id=context.request_id,
            outcome=outcome,
            details=details or {},
        )
        try:
            async with self._db.session() as session, session.begin():
                session.add(row)
        except SQLAlchemyError as exc:
            log.error("audit.write_failed", action=action, error=type(exc).__name__)

    async def query(
        self,
        *,
        actor_id: str | None = None,
        action: str | None = None,
        after: datetime | None = None,
        workspace_id: str | None = None,
        limit: int = 100,
    ) -> list[AuditEvent]:
        """Newest first. ``action`` matches exactly, or as a prefix when it ends with ``.``."""
        statement = select(AuditLog)
        if actor_id is not None:
            statement = statement.where(AuditLog.actor_id == actor_id)
        if action is not None:
            if action.endswith("."):
                statement = statement.where(AuditLog.action.startswith(action, autoescape=True))
            else:
                statement = statement.where(AuditLog.action == action)
        if after is not None:
            if after.tzinfo is None:
                after = after.replace(tzinfo=UTC)
            statement = statement.where(AuditLog.created_at > after)
        if workspace_id is not None:
            statement = statement.where(AuditLog.workspace_id == workspace_id)
        statement = statement.order_by(AuditLog.id.desc()).limit(max(1, min(limit, MAX_PAGE)))
        async with self._db.session() as session:
            rows = await session.scalars(statement)
            return [AuditEvent.of(row) for row in rows]
