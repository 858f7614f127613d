"""One admitted voice session: its storage side (transcripts, heartbeat, recording, minutes).

Owns every background task it starts and finishes them in `finish()`, which the worker's
`on_session_end` calls once the AgentSession has closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
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

# A transcript line outlives a short database blip (a failover, a restart).
_STORE_RETRY_DELAYS = (0.5, 1.0)


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
                self.spawn(self.store_message(item, text), name="store_transcript")

    async def store_message(self, item: ChatMessage, text: str) -> None:
        """Store one final utterance; the chat item id makes a retry a no-op."""
        key = provider_ids.session_key(self.admitted.call_sid, self.admitted.conversation_id)
        user = item.role == "user"

        async def store() -> None:
            async with self.pool.acquire() as conn:
                await conversations.add_message(
                    conn,
                    self.admitted.conversation_id,
                    direction="inbound" if user else "outbound",
                    role="user" if user else "assistant",
                    body=text,
                    provider_id=provider_ids.session_item_id(key, item.id),
                    interrupted=bool(item.interrupted),
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
            await asyncio.wait(set(self._tasks), timeout=10)
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
