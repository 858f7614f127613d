"""Serves the signed, short-lived recording links `wassla conversation` prints for the local
store (dev and single-box use; on S3 the links are presigned and go to the bucket)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response

from shared.errors import NotFound
from shared.providers.recording_store import LocalRecordingStore
from webhook_gateway.deps import ServicesDep

router = APIRouter()


@router.get("/recordings/{key:path}")
async def recording(key: str, expires: int, signature: str, services: ServicesDep) -> Response:
    store = services.recordings
    if not isinstance(store, LocalRecordingStore) or not store.verify(key, expires, signature):
        raise HTTPException(status_code=403, detail="link expired or invalid")
    try:
        data = await store.get(key)
    except NotFound:
        raise HTTPException(status_code=404, detail="recording not found") from None
    media_type = (
        "audio/mpeg"
        if key.endswith(".mp3")
        else "audio/ogg"
        if key.endswith(".ogg")
        else "audio/wav"
    )
    return Response(data, media_type=media_type, headers={"Cache-Control": "private, no-store"})
