"""Durable state: the relational database, blobs, key-value services and their migrations.

A library: it never imports Ray, FastAPI or other project packages.
"""

from __future__ import annotations

from state.blobs import BlobRef, BlobStore, MemoryBlobStore, open_blob_store
from state.db import Database, normalize_database_url
from state.errors import (
    BlobIntegrityError,
    BlobNotFound,
    InvalidDigest,
    MigrationError,
    StateError,
    StorageUnavailable,
)
from state.kv import KeyValueStore, MemoryKeyValueStore, RateLimitDecision, open_kv

__all__ = [
    "BlobIntegrityError",
    "BlobNotFound",
    "BlobRef",
    "BlobStore",
    "Database",
    "InvalidDigest",
    "KeyValueStore",
    "MemoryBlobStore",
    "MemoryKeyValueStore",
    "MigrationError",
    "RateLimitDecision",
    "StateError",
    "StorageUnavailable",
    "normalize_database_url",
    "open_blob_store",
    "open_kv",
]
