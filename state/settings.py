"""Settings owned by the durable-state library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr

__all__ = [
    "BlobSettings",
    "DatabaseSettings",
    "LocalBlobSettings",
    "RedisSettings",
    "S3BlobSettings",
]


class DatabaseSettings(BaseModel):
    """Where relational state lives. ``url=None`` means SQLite under the data directory."""

    url: str | None = None
    pool_size: int = 10
    pool_timeout_s: float = 10.0
    echo: bool = False


class LocalBlobSettings(BaseModel):
    """Blobs in a folder on local disk (the embedded default)."""

    backend: Literal["local"] = "local"
    # None means ``<data_dir>/blobs``.
    root: Path | None = None


class S3BlobSettings(BaseModel):
    """Blobs in an S3 (or S3-compatible) bucket."""

    backend: Literal["s3"]
    bucket: str
    prefix: str = "blobs/"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    create_bucket: bool = False


BlobSettings = Annotated[LocalBlobSettings | S3BlobSettings, Field(discriminator="backend")]


class RedisSettings(BaseModel):
    """Redis for rate limits, pub/sub and cache. ``url=None`` runs the in-process equivalent."""

    url: str | None = None
    socket_timeout_s: float = 5.0
