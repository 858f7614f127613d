"""Call recordings: where a recording is kept in the store, and its row beside the call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from shared.errors import InvalidInput
from shared.pg import Connection
from shared.providers.recording_store import RecordingStore


@dataclass(frozen=True)
class Recording:
    id: UUID
    call_id: UUID | None
    bucket_key: str
    content_type: str
    duration_seconds: int | None
    size_bytes: int
    created_at: datetime


def recording_key(workspace_id: UUID, conversation_id: UUID, name: str) -> str:
    """`workspaces/<ws>/conversations/<conv>/<name>`: one prefix per workspace and conversation."""
    if "/" in name or name.startswith("."):
        raise InvalidInput("recording name must be a plain file name")
    return f"workspaces/{workspace_id}/conversations/{conversation_id}/{name}"


async def save_recording(
    conn: Connection,
    store: RecordingStore,
    *,
    workspace_id: UUID,
    conversation_id: UUID,
    call_id: UUID | None,
    provider_id: str,
    data: bytes,
    content_type: str,
    extension: str,
    duration_seconds: int | None,
) -> UUID:
    """Upload once per provider id and link the recording row to the conversation."""
    existing: UUID | None = await conn.fetchval(
        "select id from recordings where provider_id = $1", provider_id
    )
    if existing is not None:
        return existing
    key = recording_key(workspace_id, conversation_id, f"{provider_id}.{extension}")
    stored = await store.put(key, data, content_type)
    recording_id: UUID | None = await conn.fetchval(
        """
        insert into recordings (workspace_id, conversation_id, call_id, provider_id, bucket_key,
                                content_type, duration_seconds, size_bytes)
        values ($1, $2, $3, $4, $5, $6, $7, $8)
        on conflict (provider_id) do nothing returning id
        """,
        workspace_id,
        conversation_id,
        call_id,
        provider_id,
        stored.key,
        content_type,
        duration_seconds,
        stored.size_bytes,
    )
    if recording_id is None:  # a concurrent save of the same recording won; same key, same bytes
        recording_id = await conn.fetchval(
            "select id from recordings where provider_id = $1", provider_id
        )
    assert recording_id is not None
    return recording_id


async def conversation_recordings(conn: Connection, conversation_id: UUID) -> list[Recording]:
    """The conversation's recordings, oldest first."""
    rows = await conn.fetch(
        """
        select id, call_id, bucket_key, content_type, duration_seconds, size_bytes, created_at
        from recordings where conversation_id = $1 order by created_at, id
        """,
        conversation_id,
    )
    return [Recording(**dict(r)) for r in rows]
