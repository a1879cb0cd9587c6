"""The relational layer on SQLite and PostgreSQL: migrations, round trips, constraints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from state.db import Database
from state.errors import StorageUnavailable
from state.migrations import current_revision, head_revision, schema_differences, upgrade
from state.models import Membership, User, Workspace


async def _add_owner_and_workspace(database: Database, email: str) -> tuple[str, str]:
    async with database.session() as session, session.begin():
        user = User(email=email, name="Ada")
        session.add(user)
        await session.flush()
        workspace = Workspace(name="demo", owner_id=user.id)
        session.add(workspace)
        await session.flush()
        session.add(Membership(workspace_id=workspace.id, user_id=user.id, role="owner"))
    return user.id, workspace.id


def test_migrations_reach_head_and_match_the_models(db_url: str) -> None:
    assert current_revision(db_url) == head_revision()
    assert schema_differences(db_url) == []
    upgrade(db_url)  # Upgrading an up-to-date database is a no-op.
    assert current_revision(db_url) == head_revision()


async def test_user_workspace_and_membership_round_trip(database: Database) -> None:
    verified_at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    async with database.session() as session, session.begin():
        user = User(email="ada@example.com", name="Ada", email_verified_at=verified_at)
        session.add(user)
    user_id, workspace_id = await _add_owner_and_workspace(database, "bob@example.com")

    async with database.session() as session:
        ada = await session.scalar(select(User).where(User.email == "ada@example.com"))
        membership = await session.scalar(
            select(Membership).where(Membership.workspace_id == workspace_id)
        )
        workspace = await session.get(Workspace, workspace_id)

    assert ada is not None
    assert ada.name == "Ada"
    assert not ada.is_admin
    assert ada.email_verified_at == verified_at
    assert ada.email_verified_at.tzinfo is not None
    assert ada.email_verified_at.utcoffset() == timedelta(0)
    assert abs(ada.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert membership is not None
    assert membership.user_id == user_id
    assert membership.role == "owner"
    assert workspace is not None
    assert workspace.owner_id == user_id


async def test_email_is_unique(database: Database) -> None:
    async with database.session() as session, session.begin():
        session.add(User(email="same@example.com"))

    with pytest.raises(IntegrityError):
        async with database.session() as session, session.begin():
            session.add(User(email="same@example.com"))


async def test_deleting_a_workspace_deletes_its_memberships(database: Database) -> None:
    _, workspace_id = await _add_owner_and_workspace(database, "carol@example.com")
    _, other_workspace_id = await _add_owner_and_workspace(database, "dave@example.com")

    async with database.session() as session, session.begin():
        await session.execute(delete(Workspace).where(Workspace.id == workspace_id))

    async with database.session() as session:
        remaining = (await session.scalars(select(Membership.workspace_id))).all()
    assert remaining == [other_workspace_id]


async def test_data_survives_closing_and_reopening(db_url: str) -> None:
    first = Database(db_url)
    await _add_owner_and_workspace(first, "erin@example.com")
    await first.close()

    second = Database(db_url)
    try:
        async with second.session() as session:
            count = await session.scalar(select(func.count()).select_from(User))
            erin = await session.scalar(select(User).where(User.email == "erin@example.com"))
        assert count == 1
        assert erin is not None
    finally:
        await second.close()


async def test_ping_and_dialect(database: Database, db_url: str) -> None:
    await database.ping()
    assert database.dialect == ("sqlite" if db_url.startswith("sqlite") else "postgresql")


async def test_ping_of_an_unreachable_server_is_storage_unavailable() -> None:
    from tests.harness.processes import free_port

    database = Database(f"postgresql://nobody@127.0.0.1:{free_port()}/none", pool_timeout_s=2.0)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await database.ping()
        assert caught.value.part == "database"
    finally:
        await database.close()
