"""The private recordings store: a local directory (default) or an S3-compatible bucket.

Reads go through short-lived signed URLs only; nothing is ever public.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from shared.errors import InvalidInput, NotFound
from shared.settings import Settings


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int
    content_type: str


class RecordingStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject: ...

    async def get(self, key: str) -> bytes: ...

    async def presign_get(self, key: str, ttl_seconds: int) -> str: ...


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"invalid recording key: {key!r}")
    return key


class LocalRecordingStore:
    """Files under `<data_dir>/recordings`; URLs are HMAC-signed links served by the gateway."""

    def __init__(self, root: Path, *, signing_secret: str, public_base_url: str) -> None:
        self.root = root
        self._secret = signing_secret.encode()
        self._base = public_base_url.rstrip("/")

    def _path(self, key: str) -> Path:
        return self.root / _safe_key(key)

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(path)

        await asyncio.to_thread(write)
        return StoredObject(key=key, size_bytes=len(data), content_type=content_type)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"recording {key} not found") from None

    def signature(self, key: str, expires: int) -> str:
        return hmac.new(self._secret, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        if (now if now is not None else time.time()) > expires:
            return False
        return hmac.compare_digest(self.signature(key, expires), signature)

    async def presign_get(self, key: str, ttl_seconds: int) -> str:
        expires = int(time.time()) + ttl_seconds
        query = urlencode({"expires": expires, "signature": self.signature(key, expires)})
        return f"{self._base}/recordings/{quote(_safe_key(key))}?{query}"


class S3RecordingStore:
    """A private bucket on any S3-compatible endpoint (Supabase Storage in production)."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> None:
        self.bucket = bucket
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        # botocore's default CRC32 checksums break many S3-compatible services.
        self._config = AioConfig(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"},
            signature_version="s3v4",  # SigV4 presigned URLs: what Supabase and AWS accept
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        self._session = get_session()

    def _client(self) -> Any:
        return self._session.create_client(
            "s3",
            endpoint_url=self._endpoint_url,
            region_name=self._region,
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            config=self._config,
        )

    async def put(self, key: str, data: bytes, content_type: str) -> StoredObject:
        async with self._client() as s3:
            await s3.put_object(
                Bucket=self.bucket, Key=_safe_key(key), Body=data, ContentType=content_type
            )
        return StoredObject(key=key, size_bytes=len(data), content_type=content_type)

    async def get(self, key: str) -> bytes:
        async with self._client() as s3:
            try:
                response = await s3.get_object(Bucket=self.bucket, Key=_safe_key(key))
            except s3.exceptions.NoSuchKey:
                raise NotFound(f"recording {key} not found") from None
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data

    async def presign_get(self, key: str, ttl_seconds: int) -> str:
        async with self._client() as s3:
            url: str = await s3.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": _safe_key(key)},
                ExpiresIn=ttl_seconds,
            )
            return url

    async def ensure_bucket(self) -> None:
        """Create the bucket if missing (dev and tests; production buckets are made by ops)."""
        async with self._client() as s3:
            try:
                await s3.head_bucket(Bucket=self.bucket)
            except s3.exceptions.ClientError:
                await s3.create_bucket(Bucket=self.bucket)


def build_store(settings: Settings) -> RecordingStore:
    """The store the settings choose."""
    if settings.recordings.backend == "s3":
        settings.require("s3.access_key_id", "s3.secret_access_key")
        return S3RecordingStore(
            bucket=settings.recordings.bucket,
            endpoint_url=settings.s3.endpoint_url,
            region=settings.s3.region,
            access_key_id=settings.s3.access_key_id,
            secret_access_key=settings.s3.secret_access_key,
        )
    secret = settings.jwt_secret or settings.twilio.auth_token or "wassla-dev-recordings"
    return LocalRecordingStore(
        settings.data_dir / "recordings",
        signing_secret=secret,
        public_base_url=settings.public_base_url,
    )
