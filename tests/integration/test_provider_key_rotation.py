"""Users' provider keys at rest: sealed with the versioned secrets keys, re-sealed by
``vibecode secrets rotate`` (with the workspace secrets), readable throughout."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from accounts.errors import SecretUndecryptable
from accounts.settings import AuthSettings, SecretsSettings
from cluster.cli import _rotate
from cluster.settings import Settings
from serve_apps.llm_router.provider_keys import (
    LegacyKeyCipher,
    ProviderKeyStore,
    open_provider_key_store,
)
from serve_apps.llm_router.settings import LLMSettings
from state.db import Database
from state.models import ProviderKey, User
from state.settings import DatabaseSettings

ADA_KEY = "sk-ada-" + "a" * 30
BOB_KEY = "sk-bob-" + "b" * 30
OLD_KEY = "sk-old-" + "c" * 30  # stored before versioned keys


def _spec(key_id: str) -> SecretStr:
    return SecretStr(f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}")


def _settings(db_url: str, tmp_path: Path, *keys: SecretStr) -> Settings:
    return Settings(
        data_dir=tmp_path,
        db=DatabaseSettings(url=db_url),
        auth=AuthSettings(jwt_secret=SecretStr("rotation-test-signing-key-" + "0" * 20)),
        secrets=SecretsSettings(keys=list(keys)),
    )


def _store(db: Database, settings: Settings | LLMSettings) -> ProviderKeyStore:
    llm = settings if isinstance(settings, LLMSettings) else settings.resolved().llm
    store = open_provider_key_store(db, llm)
    assert store is not None
    return store


@pytest.fixture
async def database(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url, pool_size=2)
    try:
        yield db
    finally:
        await db.close()


async def _user(db: Database, email: str) -> str:
    async with db.session() as session, session.begin():
        user = User(email=email)
        session.add(user)
        await session.flush()
        return user.id


async def _rows(db: Database) -> dict[str, ProviderKey]:
    async with db.session() as session:
        return {row.user_id: row for row in await session.scalars(select(ProviderKey))}


async def test_rotation_reseals_provider_keys_and_every_key_stays_usable(
    database: Database, db_url: str, tmp_path: Path
) -> None:
    k1, k2 = _spec("k1"), _spec("k2")
    before = _settings(db_url, tmp_path, k1)
    ada, bob, carol = [await _user(database, f"{n}@rotate.example") for n in ("ada", "bob", "c")]
    await _store(database, before).put(ada, provider="openai", api_key=ADA_KEY)
    await _store(database, before).put(bob, provider="anthropic", api_key=BOB_KEY)
    # A row of the single-key format (before revision 0006), under the development key.
    legacy = before.resolved().llm.key_encryption_key
    assert legacy is not None
    async with database.session() as session, session.begin():
        sealed = LegacyKeyCipher(legacy).encrypt(OLD_KEY, user_id=carol, provider="openai")
        session.add(ProviderKey(user_id=carol, provider="openai", key_enc=sealed))

    rows = await _rows(database)
    assert {rows[ada].key_id, rows[bob].key_id, rows[carol].key_id} == {"k1", None}
    for row, plain in ((rows[ada], ADA_KEY), (rows[bob], BOB_KEY), (rows[carol], OLD_KEY)):
        assert plain.encode() not in row.key_enc

    # The new key goes in front: everything still opens before any row is re-sealed.
    after = _settings(db_url, tmp_path, k2, k1)
    assert await _store(database, after).key_for(ada, "openai") == ADA_KEY

    counts = await _rotate(after)

    assert counts.provider_keys == 3
    assert (await _rotate(after)).provider_keys == 0
    resealed = await _rows(database)
    assert {row.key_id for row in resealed.values()} == {"k2"}
    for user_id, plain in ((ada, ADA_KEY), (bob, BOB_KEY), (carol, OLD_KEY)):
        assert resealed[user_id].key_enc != rows[user_id].key_enc
        assert plain.encode() not in resealed[user_id].key_enc
    # The old keys can go: the newest alone opens every key, old and new.
    only_new = _store(database, LLMSettings(key_encryption_keys=[k2]))
    assert await only_new.key_for(ada, "openai") == ADA_KEY
    assert await only_new.key_for(bob, "anthropic") == BOB_KEY
    assert await only_new.key_for(carol, "openai") == OLD_KEY
    await only_new.put(ada, provider="openai", api_key=ADA_KEY + "2")
    assert await only_new.key_for(ada, "openai") == ADA_KEY + "2"


async def test_a_key_moved_to_another_user_does_not_open(database: Database) -> None:
    store = _store(database, LLMSettings(key_encryption_keys=[_spec("k1")]))
    ada, eve = (
        await _user(database, "ada@moved.example"),
        await _user(database, "eve@moved.example"),
    )
    await store.put(ada, provider="openai", api_key=ADA_KEY)
    await store.put(eve, provider="openai", api_key="sk-eve")
    async with database.session() as session, session.begin():
        rows = {row.user_id: row for row in await session.scalars(select(ProviderKey))}
        rows[eve].key_enc = rows[ada].key_enc

    with pytest.raises(SecretUndecryptable):
        await store.key_for(eve, "openai")


async def test_a_dropped_key_is_reported_not_guessed(database: Database) -> None:
    ada = await _user(database, "ada@dropped.example")
    await _store(database, LLMSettings(key_encryption_keys=[_spec("k1")])).put(
        ada, provider="openai", api_key=ADA_KEY
    )

    with pytest.raises(SecretUndecryptable, match="not configured"):
        await _store(database, LLMSettings(key_encryption_keys=[_spec("k2")])).key_for(
            ada, "openai"
        )
