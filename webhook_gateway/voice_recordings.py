"""Call recordings from Twilio into the private recordings store.

The recording callback only writes a row (`voice_recording_fetches`) and answers; the fetch
runs in the background, retried with backoff, and the gateway's start-up sweep resumes rows a
restart left pending. The stored recording is keyed by RecordingSid, so a repeated callback or
a resumed fetch stores it once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from shared import calls
from shared.errors import ProviderError
from shared.pg import Connection
from shared.recordings import save_recording
from shared.services import Services

logger = logging.getLogger("webhook_gateway.voice")

_CONTENT_TYPE = "audio/wav"
_EXTENSION = "wav"


@dataclass(frozen=True)
class RecordingReady:
    """Twilio's recording status callback, in our terms."""

    recording_sid: str
    call_sid: str
    recording_url: str
    status: str
    duration_seconds: int | None


async def _queue(conn: Connection, rec: RecordingReady) -> bool:
    """Record the fetch to do; True while it is still pending (new or not yet done)."""
    status: str | None = await conn.fetchval(
        """
        insert into voice_recording_fetches (recording_sid, call_sid, recording_url,
                                             duration_seconds)
        values ($1, $2, $3, $4)
        on conflict (recording_sid) do update set updated_at = now()
        returning status
        """,
        rec.recording_sid,
        rec.call_sid,
        rec.recording_url,
        rec.duration_seconds,
    )
    return status == "pending"


class RecordingFetcher:
    """Fetches recordings in background tasks kept by Services, one per RecordingSid."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._in_flight: set[str] = set()

    async def accept(self, rec: RecordingReady) -> None:
        """Handle a recording callback: queue a completed recording and start fetching it."""
        log = {"call_sid": rec.call_sid, "recording_sid": rec.recording_sid}
        if rec.status != "completed":
            logger.info("voice.recording_not_completed", extra={**log, "status": rec.status})
            return
        async with self.services.pool.acquire() as conn:
            pending = await _queue(conn, rec)
        if pending:
            self.start(rec.recording_sid)

    def start(self, recording_sid: str) -> None:
        if recording_sid in self._in_flight:
            return
        self._in_flight.add(recording_sid)
        task = self.services.spawn(
            self._fetch(recording_sid), name=f"voice.recording:{recording_sid}"
        )
        task.add_done_callback(lambda _: self._in_flight.discard(recording_sid))

    async def resume_pending(self) -> int:
        """Start fetches a restart interrupted; returns how many were started."""
        async with self.services.pool.acquire() as conn:
            rows = await conn.fetch(
                "select recording_sid from voice_recording_fetches where status = 'pending'"
                " order by created_at limit 500"
            )
        for row in rows:
            self.start(row["recording_sid"])
        if rows:
            logger.info("voice.recording_fetches_resumed", extra={"count": len(rows)})
        return len(rows)

    async def _fetch(self, recording_sid: str) -> None:
        settings = self.services.settings
        attempts = max(1, settings.voice_recording_fetch_attempts)
        for attempt in range(1, attempts + 1):
            async with self.services.pool.acquire() as conn:
                job = await conn.fetchrow(
                    "select call_sid, recording_url, duration_seconds"
                    " from voice_recording_fetches where recording_sid = $1 and status = 'pending'",
                    recording_sid,
                )
            if job is None:
                return
            log = {"call_sid": job["call_sid"], "recording_sid": recording_sid}
            if self.services.twilio is None:
                logger.error("voice.recording_no_twilio_client", extra=log)
                return  # stays pending: resumed once TWILIO_ACCOUNT_SID is configured
            try:
                data = await self.services.twilio.fetch_recording(
                    job["recording_url"], extension=_EXTENSION
                )
                await self._store(recording_sid, job["call_sid"], job["duration_seconds"], data)
                return
            except ProviderError as exc:
                final = not exc.retryable or attempt == attempts
                await self._note_failure(recording_sid, str(exc), final=final)
                if final:
                    logger.error("voice.recording_fetch_failed", extra={**log, "error": str(exc)})
                    return
                logger.warning(
                    "voice.recording_fetch_retry",
                    extra={**log, "attempt": attempt, "error": str(exc)},
                )
            await asyncio.sleep(settings.voice_recording_retry_seconds * 2 ** (attempt - 1))

    async def _store(
        self, recording_sid: str, call_sid: str, duration_seconds: int | None, data: bytes
    ) -> None:
        async with self.services.pool.acquire() as conn:
            call = await calls.get_call(conn, call_sid)
            if call is None:
                await self._note_failure(recording_sid, "unknown call", final=True)
                logger.error(
                    "voice.recording_unknown_call",
                    extra={"call_sid": call_sid, "recording_sid": recording_sid},
                )
                return
            recording_id = await save_recording(
                conn,
                self.services.recordings,
                workspace_id=call.workspace_id,
                conversation_id=call.conversation_id,
                call_id=call.id,
                provider_id=recording_sid,
                data=data,
                content_type=_CONTENT_TYPE,
                extension=_EXTENSION,
                duration_seconds=duration_seconds,
            )
            await conn.execute(
                "update voice_recording_fetches set status = 'done', attempts = attempts + 1,"
                " last_error = null, updated_at = now() where recording_sid = $1",
                recording_sid,
            )
        logger.info(
            "voice.recording_stored",
            extra={"call_sid": call_sid, "recording_sid": recording_sid,
                   "workspace": str(call.workspace_id), "recording": str(recording_id),
                   "bytes": len(data)},
        )  # fmt: skip

    async def _note_failure(self, recording_sid: str, error: str, *, final: bool) -> None:
        async with self.services.pool.acquire() as conn:
            await conn.execute(
                "update voice_recording_fetches set attempts = attempts + 1, last_error = $2,"
                " status = case when $3 then 'failed' else status end, updated_at = now()"
                " where recording_sid = $1",
                recording_sid,
                error[:500],
                final,
            )
