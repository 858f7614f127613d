"""Call recordings from Twilio into the private recordings store.

The recording callback only writes a row (shared/recording_fetches.py) and answers; the fetch
runs in the background, retried with backoff, and the gateway's start-up sweep resumes rows a
restart left pending. The stored recording is keyed by RecordingSid, so a repeated callback or
a resumed fetch stores it once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared import calls, recording_fetches
from shared.errors import ProviderError
from shared.providers.retry import call_with_retries
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
            pending = await recording_fetches.queue(
                conn,
                recording_sid=rec.recording_sid,
                call_sid=rec.call_sid,
                recording_url=rec.recording_url,
                duration_seconds=rec.duration_seconds,
            )
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
            sids = await recording_fetches.pending_sids(conn, limit=500)
        for recording_sid in sids:
            self.start(recording_sid)
        if sids:
            logger.info("voice.recording_fetches_resumed", extra={"count": len(sids)})
        return len(sids)

    async def _fetch(self, recording_sid: str) -> None:
        settings = self.services.settings
        attempts = max(1, settings.voice.recording_fetch_attempts)
        first_delay = settings.voice.recording_retry_seconds
        log = {"recording_sid": recording_sid}  # and the call, once an attempt has read it

        async def before_retry(exc: Exception, attempt: int, _delay: float) -> None:
            await self._note_failure(recording_sid, str(exc), final=False)
            logger.warning(
                "voice.recording_fetch_retry", extra={**log, "attempt": attempt, "error": str(exc)}
            )

        try:
            await call_with_retries(
                lambda: self._fetch_once(recording_sid, log),
                delays=[first_delay * 2**attempt for attempt in range(attempts - 1)],
                before_retry=before_retry,
            )
        except ProviderError as exc:
            await self._note_failure(recording_sid, str(exc), final=True)
            logger.error("voice.recording_fetch_failed", extra={**log, "error": str(exc)})

    async def _fetch_once(self, recording_sid: str, log: dict[str, str]) -> None:
        """One attempt, unless there is nothing to do (the fetch is no longer pending)."""
        async with self.services.pool.acquire() as conn:
            job = await recording_fetches.get_pending(conn, recording_sid)
        if job is None:
            return
        log["call_sid"] = job.call_sid
        if self.services.twilio is None:
            logger.error("voice.recording_no_twilio_client", extra=log)
            return  # stays pending: resumed once TWILIO_ACCOUNT_SID is configured
        data = await self.services.twilio.fetch_recording(job.recording_url, extension=_EXTENSION)
        await self._store(recording_sid, job.call_sid, job.duration_seconds, data)

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
            await recording_fetches.mark_done(conn, recording_sid)
        logger.info(
            "voice.recording_stored",
            extra={"call_sid": call_sid, "recording_sid": recording_sid,
                   "workspace": str(call.workspace_id), "recording": str(recording_id),
                   "bytes": len(data)},
        )  # fmt: skip

    async def _note_failure(self, recording_sid: str, error: str, *, final: bool) -> None:
        async with self.services.pool.acquire() as conn:
            await recording_fetches.note_failure(conn, recording_sid, error, final=final)
