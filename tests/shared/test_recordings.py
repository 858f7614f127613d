from pathlib import Path
from uuid import uuid4

import httpx
import pytest

from shared.errors import InvalidInput, NotFound
from shared.providers.recording_store import LocalRecordingStore, S3RecordingStore
from shared.recordings import recording_key

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4


@pytest.fixture
async def s3_store(s3_endpoint: str) -> S3RecordingStore:
    store = S3RecordingStore(
        bucket=f"rec-{uuid4().hex[:8]}",
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
    await store.ensure_bucket()
    return store


async def test_s3_store_roundtrip_and_presigned_url(s3_store: S3RecordingStore) -> None:
    key = recording_key(uuid4(), uuid4(), "RE123.wav")
    stored = await s3_store.put(key, AUDIO, "audio/wav")
    assert stored.size_bytes == len(AUDIO)
    assert await s3_store.get(key) == AUDIO
    url = await s3_store.presign_get(key, 60)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200 and response.content == AUDIO


async def test_s3_store_missing_key(s3_store: S3RecordingStore) -> None:
    with pytest.raises(NotFound):
        await s3_store.get("workspaces/x/conversations/y/none.wav")


async def test_local_store_signed_links_expire(tmp_path: Path) -> None:
    store = LocalRecordingStore(tmp_path, signing_secret="s", public_base_url="https://gw.test")
    key = recording_key(uuid4(), uuid4(), "RE1.mp3")
    await store.put(key, AUDIO, "audio/mpeg")
    assert await store.get(key) == AUDIO
    url = await store.presign_get(key, 30)
    query = dict(httpx.URL(url).params)
    expires = int(query["expires"])
    assert store.verify(key, expires, query["signature"])
    assert not store.verify(key, expires, "0" * 64)
    assert not store.verify(key, expires, query["signature"], now=expires + 1)


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/./b"])
async def test_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    store = LocalRecordingStore(tmp_path, signing_secret="s", public_base_url="https://gw.test")
    with pytest.raises(InvalidInput):
        await store.put(key, b"x", "audio/wav")
