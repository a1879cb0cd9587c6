"""One behaviour contract for every BlobStore backend: memory, local folder and a real S3."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from state.blobs import BlobRef, BlobStore, MemoryBlobStore, open_blob_store
from state.blobs.local import LocalBlobStore
from state.blobs.s3 import S3BlobStore
from state.errors import BlobIntegrityError, BlobNotFound, InvalidDigest, StorageUnavailable
from state.settings import LocalBlobSettings, S3BlobSettings
from tests.harness.run import next_number
from tests.harness.s3_server import S3Server

Corrupt = Callable[[str, bytes], None]


@pytest.fixture(params=["memory", "local", "s3"])
async def store_and_corrupt(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BlobStore, Corrupt]]:
    """A fresh, empty store plus a way to overwrite a stored blob's bytes behind its back."""
    store: BlobStore
    if request.param == "memory":
        memory = MemoryBlobStore()

        def corrupt(digest: str, data: bytes) -> None:
            memory.blobs[digest] = data

        store = memory
    elif request.param == "local":
        store = open_blob_store(LocalBlobSettings(root=tmp_path / "blobs"))
        assert isinstance(store, LocalBlobStore)
        root = store.root

        def corrupt(digest: str, data: bytes) -> None:
            (root / digest[:2] / digest[2:4] / digest).write_bytes(data)

    else:
        server: S3Server = request.getfixturevalue("s3_server")
        bucket: str = request.getfixturevalue("s3_bucket")
        prefix = f"test-{next_number()}/"
        store = open_blob_store(_s3_settings(server, bucket, prefix))
        assert isinstance(store, S3BlobStore)
        client = server.client()

        def corrupt(digest: str, data: bytes) -> None:
            client.put_object(Bucket=bucket, Key=prefix + digest, Body=data)

    try:
        yield store, corrupt
    finally:
        await store.close()


def _s3_settings(server: S3Server, bucket: str, prefix: str, **overrides: Any) -> S3BlobSettings:
    fields: dict[str, Any] = {
        "backend": "s3",
        "bucket": bucket,
        "prefix": prefix,
        "endpoint_url": server.endpoint_url,
        "region": server.region,
        "access_key_id": SecretStr(server.access_key_id),
        "secret_access_key": SecretStr(server.secret_access_key),
    }
    return S3BlobSettings.model_validate({**fields, **overrides})


@pytest.fixture
def store(store_and_corrupt: tuple[BlobStore, Corrupt]) -> BlobStore:
    return store_and_corrupt[0]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world\n", bytes(range(256)) * 3, os.urandom(300_000)],
    ids=["empty", "text", "binary", "300KB"],
)
async def test_put_then_get_returns_the_exact_bytes(store: BlobStore, data: bytes) -> None:
    ref = await store.put(data)

    assert ref == BlobRef(sha256=sha(data), size=len(data))
    assert await store.get(ref.sha256) == data
    assert await store.exists(ref.sha256)


async def test_put_is_idempotent(store: BlobStore) -> None:
    first = await store.put(b"same bytes")
    second = await store.put(b"same bytes")

    assert first == second
    assert [d async for d in store.iter_digests()] == [first.sha256]


async def test_missing_blob_raises_not_found(store: BlobStore) -> None:
    digest = sha(b"never stored")

    with pytest.raises(BlobNotFound) as caught:
        await store.get(digest)

    assert caught.value.digest == digest
    assert not await store.exists(digest)


async def test_delete_removes_the_blob_and_reports_whether_it_existed(store: BlobStore) -> None:
    ref = await store.put(b"to be deleted")
    kept = await store.put(b"to be kept")

    assert await store.delete(ref.sha256) is True
    assert await store.delete(ref.sha256) is False
    assert not await store.exists(ref.sha256)
    with pytest.raises(BlobNotFound):
        await store.get(ref.sha256)
    assert await store.get(kept.sha256) == b"to be kept"


async def test_iter_digests_lists_every_stored_blob_once(store: BlobStore) -> None:
    assert [d async for d in store.iter_digests()] == []
    refs = [await store.put(f"blob {i}".encode()) for i in range(12)]
    await store.put(b"blob 3")

    listed = [d async for d in store.iter_digests()]

    assert sorted(listed) == sorted(ref.sha256 for ref in refs)


async def test_corrupted_blob_is_refused_on_read(
    store_and_corrupt: tuple[BlobStore, Corrupt],
) -> None:
    store, corrupt = store_and_corrupt
    ref = await store.put(b"original content")
    corrupt(ref.sha256, b"tampered content")

    with pytest.raises(BlobIntegrityError) as caught:
        await store.get(ref.sha256)

    assert caught.value.digest == ref.sha256
    assert caught.value.actual_digest == sha(b"tampered content")


@pytest.mark.parametrize(
    "digest",
    ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61, "0" * 62 + "/x"],
)
async def test_invalid_digests_are_refused(store: BlobStore, digest: str) -> None:
    for operation in (store.get, store.exists, store.delete):
        with pytest.raises(InvalidDigest):
            await operation(digest)


async def test_concurrent_puts_all_land(store: BlobStore) -> None:
    payloads = [f"payload {i % 10}".encode() * 100 for i in range(40)]

    refs = await asyncio.gather(*(store.put(p) for p in payloads))

    assert {ref.sha256 for ref in refs} == {sha(p) for p in set(payloads)}
    for payload in set(payloads):
        assert await store.get(sha(payload)) == payload
    assert len([d async for d in store.iter_digests()]) == 10


async def test_ping_succeeds_on_a_working_store(store: BlobStore) -> None:
    await store.ping()


# --- Backend-specific behaviour the contract cannot express generically ---------------------------


async def test_local_store_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = open_blob_store(LocalBlobSettings(root=tmp_path))
    await asyncio.gather(*(store.put(bytes([i]) * 1000) for i in range(20)))

    files = await asyncio.to_thread(lambda: [p for p in tmp_path.rglob("*") if p.is_file()])

    assert len(files) == 20
    assert all(p.name == sha(p.read_bytes()) for p in files)


async def test_local_store_requires_a_resolved_root() -> None:
    with pytest.raises(ValueError, match="root"):
        open_blob_store(LocalBlobSettings(root=None))


async def test_s3_store_creates_its_bucket_when_asked(s3_server: S3Server, run_id: str) -> None:
    bucket = f"{run_id}-created-{next_number()}"
    store = open_blob_store(_s3_settings(s3_server, bucket, "b/", create_bucket=True))
    try:
        await store.ping()
        ref = await store.put(b"in a new bucket")
        assert await store.get(ref.sha256) == b"in a new bucket"
    finally:
        await store.close()


async def test_s3_store_with_wrong_credentials_is_unavailable(
    s3_server: S3Server, s3_bucket: str
) -> None:
    if s3_server.description.startswith("moto"):
        pytest.skip("moto accepts any credentials")
    settings = _s3_settings(s3_server, s3_bucket, "x/", secret_access_key=SecretStr("wrong"))
    store = open_blob_store(settings)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            await store.put(b"refused")
        assert caught.value.part == "blobs"
    finally:
        await store.close()


async def test_local_put_repairs_a_damaged_copy(tmp_path: Path) -> None:
    store = open_blob_store(LocalBlobSettings(root=tmp_path))
    ref = await store.put(b"precious")
    path = tmp_path / ref.sha256[:2] / ref.sha256[2:4] / ref.sha256
    path.write_bytes(b"damaged!")  # same size, different bytes

    await store.put(b"precious")

    assert await store.get(ref.sha256) == b"precious"
