"""The queue of call recordings to fetch from Twilio (`voice_recording_fetches`).

One row per RecordingSid, written before the fetch, so a restart or a failed fetch is resumed
instead of lost: `pending` until stored (`done`) or given up (`failed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.pg import Connection

_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class PendingFetch:
    recording_sid: str
    call_sid: str
    recording_url: str
    duration_seconds: int | None


async def queue(
    conn: Connection,
    *,
    recording_sid: str,
    call_sid: str,
    recording_url: str,
    duration_seconds: int | None,
) -> bool:
    """Record the fetch to do; True while it is still pending (new or not yet done)."""
    status: str | None = await conn.fetchval(
        """
        insert into voice_recording_fetches (recording_sid, call_sid, recording_url,
                                             duration_seconds)
        values ($1, $2, $3, $4)
        on conflict (recording_sid) do update set updated_at = now()
        returning status
        """,
        recording_sid,
        call_sid,
        recording_url,
        duration_seconds,
    )
    return status == "pending"


async def pending_sids(conn: Connection, *, limit: int = 500) -> list[str]:
    """The oldest pending fetches first."""
    rows = await conn.fetch(
        "select recording_sid from voice_recording_fetches where status = 'pending'"
        " order by created_at limit $1",
        limit,
    )
    return [str(row["recording_sid"]) for row in rows]


async def get_pending(conn: Connection, recording_sid: str) -> PendingFetch | None:
    """The fetch, while it is still pending."""
    row = await conn.fetchrow(
        "select call_sid, recording_url, duration_seconds"
        " from voice_recording_fetches where recording_sid = $1 and status = 'pending'",
        recording_sid,
    )
    if row is None:
        return None
    return PendingFetch(
        recording_sid=recording_sid,
        call_sid=row["call_sid"],
        recording_url=row["recording_url"],
        duration_seconds=row["duration_seconds"],
    )


async def mark_done(conn: Connection, recording_sid: str) -> None:
    await conn.execute(
        "update voice_recording_fetches set status = 'done', attempts = attempts + 1,"
        " last_error = null, updated_at = now() where recording_sid = $1",
        recording_sid,
    )


async def note_failure(conn: Connection, recording_sid: str, error: str, *, final: bool) -> None:
    """Count a failed attempt; `final` gives the fetch up."""
    await conn.execute(
        "update voice_recording_fetches set attempts = attempts + 1, last_error = $2,"
        " status = case when $3 then 'failed' else status end, updated_at = now()"
        " where recording_sid = $1",
        recording_sid,
        error[:_MAX_ERROR_CHARS],
        final,
    )
