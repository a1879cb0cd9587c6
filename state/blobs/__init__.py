"""Content-addressed blob storage: local folder, S3, or in memory (tests)."""

from __future__ import annotations

from state.blobs.memory import MemoryBlobStore
from state.blobs.protocol import BlobRef, BlobStore
from state.settings import LocalBlobSettings, S3BlobSettings

__all__ = ["BlobRef", "BlobStore", "MemoryBlobStore", "open_blob_store"]


def open_blob_store(settings: LocalBlobSettings | S3BlobSettings) -> BlobStore:
    """Open the backend ``settings`` selects; ``LocalBlobSettings.root`` must be resolved."""
    match settings:
        case LocalBlobSettings():
            if settings.root is None:
                raise ValueError(
                    "LocalBlobSettings.root is None: resolve it (e.g. to <data_dir>/blobs) first"
                )
            from state.blobs.local import LocalBlobStore

            return LocalBlobStore(settings.root)
        case S3BlobSettings():
            from state.blobs.s3 import S3BlobStore

            return S3BlobStore.from_settings(settings)
