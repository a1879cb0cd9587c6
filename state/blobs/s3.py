"""Blobs in an S3 (or S3-compatible) bucket, one object per blob at ``<prefix><digest>``.

boto3 is blocking: every call runs on a worker thread via ``state.threads.run_sync``.
botocore exceptions are translated in one place, ``_translate``, driven by ``_ERROR_TABLE``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import boto3.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from state.blobs.protocol import BlobRef, check_digest, digest_of, verify
from state.errors import BlobNotFound, StateError, StorageUnavailable
from state.settings import S3BlobSettings
from state.threads import run_sync

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ListObjectsV2OutputTypeDef

__all__ = ["S3BlobStore"]

_T = TypeVar("_T")
_Translator = Callable[[str | None, str], StateError]


def _not_found(digest: str | None, detail: str) -> StateError:
    if digest is None:
        return StorageUnavailable("blobs", f"S3 object not found: {detail}")
    return BlobNotFound(digest)


def _unavailable(_digest: str | None, detail: str) -> StateError:
    return StorageUnavailable("blobs", f"S3 {detail}")


# ClientError is looked up by its S3 error code, every other botocore error by class (along its
# MRO). Anything not listed means the store is unusable for now.
_ERROR_TABLE: dict[str | type[Exception], _Translator] = {
    "NoSuchKey": _not_found,
    "404": _not_found,
    "NotFound": _not_found,
    "NoSuchBucket": _unavailable,
    "AccessDenied": _unavailable,
    "403": _unavailable,
    "InvalidAccessKeyId": _unavailable,
    "SignatureDoesNotMatch": _unavailable,
    # Connection refused/reset, timeouts, missing credentials, ...
    BotoCoreError: _unavailable,
}


def _translate(exc: Exception, digest: str | None) -> StateError:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        translator = _ERROR_TABLE.get(code, _unavailable)
        return translator(digest, f"{code}: {error.get('Message', '')}".strip())
    for cls in type(exc).__mro__:
        if cls in _ERROR_TABLE:
            return _ERROR_TABLE[cls](digest, f"{type(exc).__name__}: {exc}")
    return _unavailable(digest, f"{type(exc).__name__}: {exc}")


# Creating a client from a fresh boto3 Session reloads botocore's data files (~70 ms); one
# shared Session makes it ~5 ms. Sessions are not thread-safe, hence the lock.
_SESSION = boto3.session.Session()
_SESSION_LOCK = threading.Lock()


def _new_client(**kwargs: Any) -> S3Client:
    with _SESSION_LOCK:
        return _SESSION.client("s3", **kwargs)


class S3BlobStore:
    """Content-addressed blobs in ``bucket`` under ``prefix``.

    With ``create_bucket=True`` the bucket is created on first use if it does not exist.
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "blobs/",
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        create_bucket: bool = False,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self._create_bucket = create_bucket
        self._bucket_ready = not create_bucket
        self._bucket_lock = anyio.Lock()
        config = Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            # S3-compatible servers on a bare host:port cannot do virtual-hosted buckets.
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        self._client: S3Client = _new_client(
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    @classmethod
    def from_settings(cls, settings: S3BlobSettings) -> S3BlobStore:
        return cls(
            bucket=settings.bucket,
            prefix=settings.prefix,
            endpoint_url=settings.endpoint_url,
            region=settings.region,
            access_key_id=(
                settings.access_key_id.get_secret_value() if settings.access_key_id else None
            ),
            secret_access_key=(
                settings.secret_access_key.get_secret_value()
                if settings.secret_access_key
                else None
            ),
            create_bucket=settings.create_bucket,
        )

    def _key(self, digest: str) -> str:
        return f"{self.prefix}{digest}"

    async def put(self, data: bytes) -> BlobRef:
        digest = digest_of(data)
        ref = BlobRef(sha256=digest, size=len(data))
        if await self.exists(digest):
            return ref
        await self._call(
            functools.partial(
                self._client.put_object, Bucket=self.bucket, Key=self._key(digest), Body=data
            )
        )
        return ref

    async def get(self, digest: str) -> bytes:
        key = self._key(check_digest(digest))

        def read() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return body.read()
            finally:
                body.close()

        return verify(digest, await self._call(read, digest=digest))

    async def exists(self, digest: str) -> bool:
        key = self._key(check_digest(digest))
        try:
            await self._call(
                functools.partial(self._client.head_object, Bucket=self.bucket, Key=key),
                digest=digest,
            )
        except BlobNotFound:
            return False
        return True

    async def delete(self, digest: str) -> bool:
        """Delete the blob; return False if it did not exist.

        S3 deletes report success either way, so presence is checked first; a concurrent
        delete of the same blob may make both callers see True.
        """
        if not await self.exists(digest):
            return False
        await self._call(
            functools.partial(self._client.delete_object, Bucket=self.bucket, Key=self._key(digest))
        )
        return True

    async def iter_digests(self) -> AsyncIterator[str]:
        await self._ensure_bucket()
        paginator = self._client.get_paginator("list_objects_v2")
        pages: Iterator[ListObjectsV2OutputTypeDef] = iter(
            paginator.paginate(Bucket=self.bucket, Prefix=self.prefix)
        )
        while (page := await self._call(functools.partial(next, pages, None))) is not None:
            for item in page.get("Contents", []):
                name = item.get("Key", "")[len(self.prefix) :]
                try:
                    yield check_digest(name)
                except StateError:
                    continue  # A foreign object under our prefix.

    async def ping(self) -> None:
        await self._ensure_bucket()
        await self._call(functools.partial(self._client.head_bucket, Bucket=self.bucket))

    async def close(self) -> None:
        self._client.close()

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        async with self._bucket_lock:
            if not self._bucket_ready:
                await self._call_raw(self._create_bucket_if_missing)
                self._bucket_ready = True

    def _create_bucket_if_missing(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def _call(self, func: Callable[[], _T], *, digest: str | None = None) -> _T:
        await self._ensure_bucket()
        return await self._call_raw(func, digest=digest)

    async def _call_raw(self, func: Callable[[], _T], *, digest: str | None = None) -> _T:
        try:
            return await run_sync(func)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, digest) from exc
