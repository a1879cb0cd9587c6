"""The long-lived collaborators of a gateway replica, opened at startup and closed at shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

from accounts.service import AccountService
from serve_apps.gateway.config import GatewayConfig
from state.blobs import BlobStore, open_blob_store
from state.db import Database
from state.kv import KeyValueStore, open_kv

__all__ = ["ReadinessProbe", "Services"]

# An extra readiness check (e.g. "Ray answers"), raising when the part is not ready.
ReadinessProbe = Callable[[], Awaitable[None]]


@dataclass
class Services:
    db: Database
    blobs: BlobStore
    kv: KeyValueStore
    accounts: AccountService
    redis_configured: bool
    probes: dict[str, ReadinessProbe]

    @classmethod
    async def open(
        cls,
        config: GatewayConfig,
        stack: AsyncExitStack,
        *,
        probes: dict[str, ReadinessProbe] | None = None,
    ) -> Services:
        """Open every collaborator; ``stack`` closes them in reverse order."""
        db = Database.from_settings(config.db)
        stack.push_async_callback(db.close)
        blobs = open_blob_store(config.blob)
        stack.push_async_callback(blobs.close)
        kv = open_kv(config.redis)
        stack.push_async_callback(kv.close)
        return cls(
            db=db,
            blobs=blobs,
            kv=kv,
            accounts=AccountService(db, config.auth),
            redis_configured=config.redis.url is not None,
            probes=dict(probes or {}),
        )
