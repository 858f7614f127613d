"""One admitted voice session: its storage side (transcripts, heartbeat, recording, minutes).

Owns every background task it starts and finishes them in `finish()`, which the worker's
`on_session_end` calls once the AgentSession has closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from livekit.agents import AgentSession, ChatMessage, CloseEvent, ConversationItemAddedEvent
from livekit.agents.voice.report import SessionReport

from shared import calls, conversations, metrics, provider_ids, recordings
from shared.admission import Admitted
from shared.pg import UNAVAILABLE_ERRORS
from shared.providers import recording_store
from shared.providers.retry import call_with_retries
from shared.settings import Settings
from worker.caller import Caller

logger = logging.getLogger("worker.call")

# A transcript line outlives a short database blip (a failover) in one store...
_STORE_RETRY_DELAYS = (0.5, 1.0)
# ...and a longer outage (a restart) in the call's queue, stored in order once the database
# answers again. Past this many waiting lines, or still waiting when the call has ended and
# finish() has waited its while, a line is logged as `call.transcript_lost` with its ids.
_TRANSCRIPT_QUEUE_MAX = 200
_OUTAGE_RETRY_SECONDS = 1.0  # between rounds of store retries while the database is away
_FINISH_WAIT_SECONDS = 10.0


def _database_unavailable(exc: Exception) -> bool:
    unavailable = isinstance(exc, UNAVAILABLE_ERRORS)
    if unavailable:
        metrics.DATABASE_UNAVAILABLE.labels("worker_transcript").inc()
    return unavailable


_TIMINGS = (
    "transcription_delay",
    "end_of_turn_delay",
    "llm_node_ttft",
    "tts_node_ttfb",
    "e2e_latency",
)


@dataclass(frozen=True)
class _Line:
    """One final utterance waiting to be stored."""

    item_id: str
    user: bool
    text: str
    interrupted: bool


def _timings(item: ChatMessage) -> dict[str, float]:
    """The latency figures the framework measured for one chat item, in seconds."""
    metrics: dict[str, Any] = dict(item.metrics or {})
    return {key: round(float(metrics[key]), 4) for key in _TIMINGS if key in metrics}


class CallSession:
    def __init__(
        self,
        *,
        settings: Settings,
        pool: asyncpg.Pool,
        admitted: Admitted,
        caller: Caller,
        room_name: str,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.admitted = admitted
        self.caller = caller
        self.room_name = room_name
        self.session: AgentSession[None] | None = None
        self.ended_at: datetime | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[Any]] = []
        self._finished = False
        self._live = False  # counted in wassla_live_calls
        self._transcript: deque[_Line] = deque()  # stored in order by one writer task
        self._writer: asyncio.Task[None] | None = None

    @property
    def log_extra(self) -> dict[str, str]:
        extra = {
            "workspace": str(self.admitted.workspace_id),
            "conversation": str(self.admitted.conversation_id),
            "room": self.room_name,
        }
        if self.admitted.call_sid:
            extra["call_sid"] = self.admitted.call_sid
        return extra

    @property
    def is_phone_call(self) -> bool:
        return self.admitted.call_sid is not None

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference until it is done."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "call.task_failed",
                exc_info=task.exception(),
                extra={**self.log_extra, "task": task.get_name()},
            )

    # --- session wiring -----------------------------------------------------------------

    def attach(self, session: AgentSession[None]) -> None:
        self.session = session
        if not self._live:
            self._live = True
            metrics.LIVE_CALLS.inc()
        session.on("conversation_item_added", self._on_item_added)
        session.on("close", self._on_close)

    def start_heartbeat(self) -> None:
        if self.is_phone_call:
            self._loops.append(asyncio.create_task(self._heartbeat(), name="call_heartbeat"))

    def add_loop(self, task: asyncio.Task[Any]) -> None:
        """A long-running task of this call (e.g. the call timer), cancelled at the end."""
        self._loops.append(task)

    def mark_ended(self) -> None:
        if self.ended_at is None:
            self.ended_at = datetime.now(UTC)

    def _on_close(self, _: CloseEvent) -> None:
        self.mark_ended()

    def _on_item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if isinstance(item, ChatMessage) and item.role in ("user", "assistant"):
            if item.metrics:
                # Where a turn's time went (STT, end of turn, LLM, TTS, end to end).
                timings = _timings(item)
                logger.info(
                    "call.turn_metrics",
                    extra={**self.log_extra, "role": item.role, **timings},
                )
                for stage, seconds in timings.items():
                    metrics.VOICE_TURN_LATENCY.labels(stage).observe(seconds)
            if item.role == "assistant" and item.interrupted:
                metrics.BARGE_INS.inc()  # the caller spoke over the agent's reply
            text = (item.text_content or "").strip()
            if text:
                line = _Line(item.id, item.role == "user", text, bool(item.interrupted))
                self.queue_line(line)

    def queue_caller_line(self, item_id: str, text: str) -> None:
        """Store what the caller did outside a model turn (a key pressed) as their line."""
        self.queue_line(_Line(item_id, user=True, text=text, interrupted=False))

    def queue_line(self, line: _Line) -> None:
        """Store `line` after those before it, waiting out a database outage."""
        if len(self._transcript) >= _TRANSCRIPT_QUEUE_MAX:
            self._log_lost(line, reason="queue_full")
            return
        self._transcript.append(line)
        if self._writer is None or self._writer.done():
            self._writer = self.spawn(self._write_transcript(), name="store_transcript")

    async def _write_transcript(self) -> None:
        waiting_since: float | None = None
        loop = asyncio.get_running_loop()
        while self._transcript:
            line = self._transcript[0]
            try:
                await self.store_message(line)
            except UNAVAILABLE_ERRORS:
                if waiting_since is None:
                    waiting_since = loop.time()
                    logger.warning(
                        "call.transcript_waiting",
                        extra={**self.log_extra, "pending": len(self._transcript)},
                    )
                await asyncio.sleep(_OUTAGE_RETRY_SECONDS)
                continue
            except Exception:
                self._transcript.popleft()
                self._log_lost(line, reason="store_failed", exc_info=True)
                continue
            self._transcript.popleft()
            if waiting_since is not None:
                logger.info(
                    "call.transcript_caught_up",
                    extra={
                        **self.log_extra,
                        "waited_seconds": round(loop.time() - waiting_since, 1),
                        "pending": len(self._transcript),
                    },
                )
                waiting_since = None

    def _provider_id(self, line: _Line) -> str:
        key = provider_ids.session_key(self.admitted.call_sid, self.admitted.conversation_id)
        return provider_ids.session_item_id(key, line.item_id)

    def _log_lost(self, line: _Line, *, reason: str, exc_info: bool = False) -> None:
        logger.error(
            "call.transcript_lost",
            exc_info=exc_info,
            extra={
                **self.log_extra,
                "item": line.item_id,
                "provider_id": self._provider_id(line),
                "role": "user" if line.user else "assistant",
                "chars": len(line.text),
                "reason": reason,
            },
        )

    async def store_message(self, line: _Line) -> None:
        """Store one final utterance; the chat item id makes a retry a no-op."""

        async def store() -> None:
            async with self.pool.acquire() as conn:
                await conversations.add_message(
                    conn,
                    self.admitted.conversation_id,
                    direction="inbound" if line.user else "outbound",
                    role="user" if line.user else "assistant",
                    body=line.text,
                    provider_id=self._provider_id(line),
                    interrupted=line.interrupted,
                )

        await call_with_retries(store, delays=_STORE_RETRY_DELAYS, retry_if=_database_unavailable)

    async def _heartbeat(self) -> None:
        assert self.admitted.call_sid is not None
        while True:
            await asyncio.sleep(self.settings.worker.heartbeat_seconds)
            try:
                async with self.pool.acquire() as conn:
                    await calls.touch(conn, self.admitted.call_sid)
            except UNAVAILABLE_ERRORS:
                metrics.DATABASE_UNAVAILABLE.labels("worker_call").inc()
                logger.warning("call.heartbeat_failed", extra=self.log_extra)

    # --- hand-off ------------------------------------------------------------------------

    async def mark_handed_off(self) -> None:
        async with self.pool.acquire() as conn:
            await conversations.mark_handed_off(conn, self.admitted.conversation_id)

    # --- the end -------------------------------------------------------------------------

    async def finish(self, report: SessionReport | None) -> None:
        """Store what is pending, the recording, and close and charge the call, once."""
        if self._finished:
            return
        self._finished = True
        self.mark_ended()
        if self._live:
            self._live = False
            metrics.LIVE_CALLS.dec()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=_FINISH_WAIT_SECONDS)
        if self._writer is not None and not self._writer.done():
            # The database is still away: what waits is named in the log, not dropped silently.
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            while self._transcript:
                self._log_lost(self._transcript.popleft(), reason="database_unavailable")
        try:
            await self._save_recording(report)
        except Exception:
            logger.exception("call.recording_failed", extra=self.log_extra)
        async with self.pool.acquire() as conn:
            if self.admitted.call_sid is not None:
                charge = await calls.finish_call(
                    conn, self.admitted.call_sid, status="completed", ended_at=self.ended_at
                )
                logger.info(
                    "call.finished",
                    extra={
                        **self.log_extra,
                        "minutes": charge.quantity if charge else 0,
                        "charged_now": bool(charge and charge.created),
                    },
                )
            else:
                await conversations.close_conversation(conn, self.admitted.conversation_id)
                logger.info("playground.finished", extra=self.log_extra)

    async def _save_recording(self, report: SessionReport | None) -> None:
        path = report.audio_recording_path if report else None
        if path is None or not path.exists():
            logger.info("call.no_recording", extra=self.log_extra)
            return
        data = await asyncio.to_thread(path.read_bytes)
        if not data:
            return
        store = recording_store.build_store(self.settings)
        async with self.pool.acquire() as conn:
            await recordings.save_recording(
                conn,
                store,
                workspace_id=self.admitted.workspace_id,
                conversation_id=self.admitted.conversation_id,
                call_id=self.admitted.call_id,
                provider_id=provider_ids.session_recording_id(
                    self.admitted.call_sid, self.admitted.conversation_id
                ),
                data=data,
                content_type="audio/ogg",
                extension="ogg",
                duration_seconds=round(report.duration) if report and report.duration else None,
            )
        logger.info("call.recording_saved", extra={**self.log_extra, "bytes": len(data)})
