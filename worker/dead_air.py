"""No dead air: a filler when the reply is late, an apology when it fails.

Late: the agent is `thinking` from the caller's end of turn until its reply's first audio
plays, which covers both the model's first token and the TTS's first audio. Past
`late_reply_filler_seconds` of that, the framework's keyboard-typing clip (its
BackgroundAudioPlayer's thinking sound) plays on a track of its own, no TTS involved, so it
also works when the TTS is the slow part, until the reply starts. We play the clip
ourselves: the BackgroundAudioPlayer's close unpublishes its track, and unpublishing while
the session deletes the room never answers, so every job process hung until it was killed;
it also runs a mixer that wakes 100 times a second on every call.

The track is published halfway to the first late mark, not at the start of the call: a
published track is encoded every 10 ms even when silent, about 0.02 of a core a call
(bench/README.md), and most calls never need it. Once published it stays (see above).

Failed: a model or TTS error the framework gave up on (its retries spent) leaves the turn
silent; the caller hears the apology line instead and the call goes on. After
`failures_before_handoff` failed turns in a row an agent with a hand-off number hands off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from livekit import rtc
from livekit.agents import (
    AgentSession,
    AgentStateChangedEvent,
    CloseEvent,
    ErrorEvent,
    SpeechCreatedEvent,
)
from livekit.agents.utils.audio import audio_frames_from_file
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.background_audio import BuiltinAudioClip

logger = logging.getLogger("worker.dead_air")

FILLER_CLIP = BuiltinAudioClip.KEYBOARD_TYPING
FILLER_RATE = 16_000  # phone-band audio: the clip is decoded at the rate the line carries
_TRACK_NAME = "late_reply_filler"
_REPLY_ERRORS = ("llm_error", "tts_error")


class LateReplyFiller:
    """Plays the filler while one session's reply is later than `delay` seconds."""

    def __init__(self, session: AgentSession[Any], *, delay: float, log_extra: dict[str, str]):
        self._session = session
        self._delay = delay
        self._log_extra = log_extra
        self._room: rtc.Room | None = None
        self._source: rtc.AudioSource | None = None
        self._publishing: asyncio.Task[rtc.AudioSource | None] | None = None
        self._prepare_timer: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._playing: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self, room: rtc.Room) -> None:
        """Watch the agent's state; the track is published when a reply is half-way late."""
        self._room = room
        self._session.on("agent_state_changed", self._on_agent_state)
        self._session.on("close", self._on_close)

    def _on_agent_state(self, event: AgentStateChangedEvent) -> None:
        if event.new_state == "thinking":
            if self._timer is None and self._playing is None:
                loop = asyncio.get_running_loop()
                if self._publishing is None:
                    self._prepare_timer = loop.call_later(self._delay / 2, self._prepare)
                self._timer = loop.call_later(self._delay, self._play)
            return
        self._stop()

    def _prepare(self) -> None:
        self._prepare_timer = None
        if self._publishing is None and self._room is not None and not self._closed:
            self._publishing = asyncio.create_task(self._publish(self._room), name="filler_track")

    async def _publish(self, room: rtc.Room) -> rtc.AudioSource | None:
        started = time.monotonic()
        source = rtc.AudioSource(FILLER_RATE, 1, queue_size_ms=200)
        track = rtc.LocalAudioTrack.create_audio_track(_TRACK_NAME, source)
        try:
            await room.local_participant.publish_track(
                track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
            )
        except Exception:  # the room went away: no filler, the call goes on
            logger.warning("call.late_reply_filler_unpublished", extra=self._log_extra)
            await source.aclose()
            return None
        # The filler's mark comes delay / 2 after the publish began: a slower one starts it late.
        publish_ms = round((time.monotonic() - started) * 1000)
        logger.info(
            "call.late_reply_filler_published", extra={**self._log_extra, "publish_ms": publish_ms}
        )
        if self._closed:  # the call ended while the track was being published
            await source.aclose()
            return None
        self._source = source
        return source

    def _play(self) -> None:
        self._timer = None
        if self._publishing is None or self._session.agent_state != "thinking":
            return
        extra = {"after": self._delay, "track_ready": self._publishing.done()}
        logger.info("call.late_reply_filler", extra={**self._log_extra, **extra})
        self._playing = asyncio.create_task(self._loop_clip(self._publishing), name="filler")

    async def _loop_clip(self, publishing: asyncio.Task[rtc.AudioSource | None]) -> None:
        # Done already unless the publish is slow; shielded, as a reply starting meanwhile
        # cancels this task, not the publish.
        source = await asyncio.shield(publishing)
        if source is None:
            return
        while True:  # until the reply starts (a long wait outlasts the clip)
            async for frame in audio_frames_from_file(
                FILLER_CLIP.path(), sample_rate=FILLER_RATE, num_channels=1
            ):
                await source.capture_frame(frame)

    def _stop(self) -> None:
        if self._prepare_timer is not None:  # a reply on time: no track needed yet
            self._prepare_timer.cancel()
            self._prepare_timer = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._playing is not None:
            self._playing.cancel()
            self._playing = None
            if self._source is not None:
                self._source.clear_queue()  # the reply starts now: no clip under it

    def _on_close(self, _: CloseEvent) -> None:
        self._stop()

    async def aclose(self) -> None:
        """Stop and release the audio source; the track goes with the room (deleted at the
        end of every session), so it is never unpublished (see the module's note)."""
        self._closed = True
        self._session.off("agent_state_changed", self._on_agent_state)
        self._session.off("close", self._on_close)
        playing = self._playing
        self._stop()
        if playing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await playing
        if self._publishing is not None:
            # A publish racing the room's deletion may never answer; if it ever does, it
            # closes its own source (the call has ended).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._publishing), timeout=5.0)
        if self._source is not None:
            source, self._source = self._source, None
            await source.aclose()


class ReplyFailures:
    """Apologises for each failed reply; hands off after `handoff_after` failures in a row.

    Counted per reply (the speech handle of a model turn), not per error event: a turn's
    preemptive generation and its real one may both fail, and that is one silent turn.
    """

    def __init__(
        self,
        session: AgentSession[Any],
        *,
        handoff_after: int,
        apology: Callable[[], str],
        hand_off: Callable[[], bool],
        log_extra: dict[str, str],
    ) -> None:
        self._session = session
        self._handoff_after = max(1, handoff_after)
        self._apology = apology
        self._hand_off = hand_off
        self._log_extra = log_extra
        self._error: str | None = None  # the last model or TTS error the framework gave up on
        self.in_a_row = 0
        session.on("error", self._on_error)
        session.on("speech_created", self._on_speech)

    def _on_error(self, event: ErrorEvent) -> None:
        error = event.error
        kind = getattr(error, "type", "")
        if kind in _REPLY_ERRORS and not getattr(error, "recoverable", True):
            self._error = f"{kind}: {getattr(error, 'error', error)}"[:300]

    def _on_speech(self, event: SpeechCreatedEvent) -> None:
        if event.source == "generate_reply":
            # An error before this reply (a fixed line's TTS) is not this reply's failure.
            self._error = None
            event.speech_handle.add_done_callback(self._reply_done)

    def _reply_done(self, handle: SpeechHandle) -> None:
        error, self._error = self._error, None
        if handle.interrupted:
            return  # the caller spoke, or a preemptive generation was dropped
        failure = handle.exception()
        if failure is None and error is None:
            self.in_a_row = 0  # a reply of the model's reached the caller
            return
        self.in_a_row += 1
        logger.warning(
            "call.reply_failed",
            extra={
                **self._log_extra,
                "in_a_row": self.in_a_row,
                "error": error or str(failure)[:300],
            },
        )
        if self.in_a_row >= self._handoff_after and self._hand_off():
            self.in_a_row = 0
            return
        try:
            self._session.say(self._apology())
        except RuntimeError:
            pass  # the session is closing

    def close(self) -> None:
        self._session.off("error", self._on_error)
        self._session.off("speech_created", self._on_speech)
