"""A warm hand-off: the person is told about the call before the caller is put through.

The caller hears the hold line while we dial the agent's hand-off number through the outbound
SIP trunk (`wassla livekit setup`) into the caller's own room. The person who answers hears
the whisper line and a one-paragraph summary of the call (shared/handoff_summary, on the
session's LLM; the plain fallback when the model fails), and only then are the two
connected and the agent leaves. Nobody answers within `CALLS_WARM_RING_SECONDS`: the caller
hears "nobody answered" (a transcript line) and goes on with the agent.

Why not livekit-agents' `WarmTransferTask`: it dials the person into a consultation room
and connects them with `MoveParticipant`, which the open-source livekit-server answers
"not implemented" (LiveKit Cloud only). Here the person joins the caller's room, and who
hears whom is decided by LiveKit itself until the two are connected:
- our tracks: subscription permissions (the caller may hear the agent's voice, the person
  only the whisper track);
- the two phone legs: server-side subscription updates. livekit-sip subscribes a SIP
  participant to every audio track in its room (the caller at once when the person's track
  is published, the person once they answer), so each of those is undone as it happens, and
  again a moment later in case our update reached the server before livekit-sip's own.
  The person's leg carries no audio before it is answered; as they answer, up to a fraction
  of a second of the caller's line (on hold) may reach them before the update lands.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Coroutine, Iterable
from typing import Any

from livekit import api, rtc
from livekit.agents import AgentSession, get_job_context, llm

from shared import handoff_summary, phrases
from shared.models import Agent as AgentConfig
from shared.providers.livekit_sip import find_outbound_trunk
from shared.providers.transport import TRANSPORT_ERRORS
from worker.call_session import CallSession

logger = logging.getLogger("worker.warm_handoff")

SUMMARY_TIMEOUT_SECONDS = 8.0  # the model's whole summary; the fallback is said after
# The person's leg subscribes to our whisper track right after it answers; speak once it
# has (or after this long, in case that notice is lost).
_LISTENING_WITHIN_SECONDS = 3.0
# A second round of subscription updates this much after the first: one sent just before
# livekit-sip's own subscription would otherwise be undone by it.
_RECHECK_SECONDS = 0.4
_DIAL_MARGIN_SECONDS = 15.0  # past the ring time: the API's own answer must come by then
WHISPER_TRACK = "handoff-whisper"
_DROP_ERRORS: tuple[type[Exception], ...] = (api.TwirpError, *TRANSPORT_ERRORS)


class _NotConnected(Exception):
    """The person did not answer, declined, or could not be dialled."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def call_turns(session: AgentSession[None]) -> list[handoff_summary.Turn]:
    """The conversation so far as (role, text) pairs, the caller as "user"."""
    return [
        (message.role, message.text_content or "")
        for message in session.history.messages()
        if message.role in ("user", "assistant") and message.text_content
    ]


async def summarise(
    session: AgentSession[None], language: str, log_extra: dict[str, str] | None = None
) -> str:
    """One spoken paragraph about the call, from the session's LLM; the fallback if it fails."""
    turns = call_turns(session)
    model = session.llm
    if isinstance(model, llm.LLM):
        chat = llm.ChatContext()
        for message in handoff_summary.summary_messages(turns, language):
            chat.add_message(
                role="system" if message["role"] == "system" else "user",
                content=message["content"],
            )
        try:
            async with asyncio.timeout(SUMMARY_TIMEOUT_SECONDS):
                parts: list[str] = []
                async with model.chat(chat_ctx=chat) as stream:
                    async for chunk in stream:
                        if chunk.delta and chunk.delta.content:
                            parts.append(chunk.delta.content)
            spoken = handoff_summary.spoken_summary("".join(parts))
            if spoken:
                return spoken
        except Exception as exc:  # the person hears the fallback instead, never silence
            logger.warning(
                "call.warm_handoff_summary_failed", extra={**(log_extra or {}), "error": repr(exc)}
            )
    return handoff_summary.fallback_summary(turns, language)


class _Legs:
    """Who hears whom in the caller's room while the person is dialled and told."""

    def __init__(
        self, room: rtc.Room, lk: api.LiveKitAPI, caller: str, human: str, log_extra: dict[str, str]
    ) -> None:
        self.room = room
        self.log_extra = log_extra
        self.lk = lk
        self.caller = caller
        self.human = human
        self.human_tracks: set[str] = set()
        self.whisper_heard = asyncio.Event()
        self.human_left = asyncio.Event()
        self.whisper: rtc.LocalTrackPublication | None = None
        self.source: rtc.AudioSource | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro, name="warm_handoff_subscriptions")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- LiveKit room events -------------------------------------------------------------

    def _on_track_published(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if participant.identity == self.human:
            # livekit-sip has subscribed the caller to it, or is about to: undo that.
            self.human_tracks.add(publication.sid)
            self._spawn(self._keep_apart(self.caller, [publication.sid]))

    def _on_local_track_subscribed(self, track: rtc.LocalTrack) -> None:
        if self.whisper is not None and track.sid == self.whisper.sid:
            self.whisper_heard.set()

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.human:
            self.human_left.set()

    # --- subscriptions -------------------------------------------------------------------

    async def _update(self, identity: str, sids: Iterable[str], subscribe: bool) -> None:
        sids = list(sids)
        if not sids:
            return
        await self.lk.room.update_subscriptions(
            api.UpdateSubscriptionsRequest(
                room=self.room.name, identity=identity, track_sids=sids, subscribe=subscribe
            )
        )

    async def _keep_apart(self, identity: str, sids: list[str]) -> None:
        try:
            await self._update(identity, sids, subscribe=False)
            await asyncio.sleep(_RECHECK_SECONDS)
            await self._update(identity, sids, subscribe=False)
        except Exception as exc:  # a leg that has just left: nothing to keep apart
            logger.info(
                "call.warm_handoff_unsubscribe_failed", extra={**self.log_extra, "error": repr(exc)}
            )

    def caller_tracks(self) -> list[str]:
        caller = self.room.remote_participants.get(self.caller)
        return list(caller.track_publications) if caller else []

    # --- our tracks ----------------------------------------------------------------------

    async def open(self, sample_rate: int) -> None:
        """Publish the whisper track and let only the person hear it, only the caller the rest."""
        self.room.on("track_published", self._on_track_published)
        self.room.on("local_track_subscribed", self._on_local_track_subscribed)
        self.room.on("participant_disconnected", self._on_participant_disconnected)
        local = self.room.local_participant
        voice = list(local.track_publications)
        self.source = rtc.AudioSource(sample_rate, 1)
        track = rtc.LocalAudioTrack.create_audio_track(WHISPER_TRACK, self.source)
        self.whisper = await local.publish_track(
            track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        local.set_track_subscription_permissions(
            allow_all_participants=False,
            participant_permissions=[
                rtc.ParticipantTrackPermission(
                    participant_identity=self.caller, allow_all=False, allowed_track_sids=voice
                ),
                rtc.ParticipantTrackPermission(
                    participant_identity=self.human,
                    allow_all=False,
                    allowed_track_sids=[self.whisper.sid],
                ),
            ],
        )

    async def answered(self) -> None:
        """The person picked up: keep the caller's line from them, wait until they listen."""
        for sid in self.human_tracks:
            self._spawn(self._keep_apart(self.caller, [sid]))
        try:
            async with asyncio.timeout(_LISTENING_WITHIN_SECONDS):
                await self.whisper_heard.wait()
        except TimeoutError:
            logger.info("call.warm_handoff_whisper_unconfirmed", extra=self.log_extra)
        # livekit-sip subscribed the person to every track at once, the caller's among them.
        self._spawn(self._keep_apart(self.human, self.caller_tracks()))

    async def say(self, session: AgentSession[None], text: str) -> None:
        """Speak `text` on the whisper track (only the person hears it), to its end."""
        assert self.source is not None and session.tts is not None
        async with session.tts.synthesize(text) as stream:
            async for audio in stream:
                await self.source.capture_frame(audio.frame)
        await self.source.wait_for_playout()

    async def connect(self) -> None:
        """Put the caller and the person through to each other."""
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._update(self.caller, self.human_tracks, subscribe=True)
        await self._update(self.human, self.caller_tracks(), subscribe=True)

    async def close(self, *, restore: bool) -> None:
        """Stop watching; `restore`: the agent goes on with the caller, as before the hand-off."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.room.off("track_published", self._on_track_published)
        self.room.off("local_track_subscribed", self._on_local_track_subscribed)
        self.room.off("participant_disconnected", self._on_participant_disconnected)
        local = self.room.local_participant
        if self.whisper is not None:
            await local.unpublish_track(self.whisper.sid)
            self.whisper = None
        if self.source is not None:
            await self.source.aclose()
            self.source = None
        if restore:
            local.set_track_subscription_permissions(allow_all_participants=True)


def _watch_until_one_leaves(room: rtc.Room, identities: set[str]) -> None:
    """Once the caller or the person hangs up, end the other's leg too (the room goes)."""

    def on_left(participant: rtc.RemoteParticipant) -> None:
        if participant.identity in identities:
            room.off("participant_disconnected", on_left)
            get_job_context().delete_room()

    room.on("participant_disconnected", on_left)
    if not identities <= room.remote_participants.keys():
        # One hung up while the two were being connected, before this watch began: nobody
        # would end the other's leg, and the caller would wait in silence.
        room.off("participant_disconnected", on_left)
        get_job_context().delete_room()


async def _dial(
    lk: api.LiveKitAPI, call: CallSession, room_name: str, number: str, human: str
) -> None:
    """Ring the person into `room_name`; returns once they answered."""
    settings = call.settings
    trunk = await find_outbound_trunk(lk, settings.livekit.sip_outbound_trunk_name)
    if trunk is None:
        # A setup gap, not a busy colleague: say so loudly, the caller stays with the agent.
        logger.error(
            "call.warm_handoff_no_trunk",
            extra={**call.log_extra, "trunk_name": settings.livekit.sip_outbound_trunk_name},
        )
        raise _NotConnected("no_outbound_trunk")
    ring = settings.calls.warm_ring_seconds
    request = api.CreateSIPParticipantRequest(
        sip_trunk_id=trunk.sip_trunk_id,
        sip_call_to=number,
        # The person sees the line the caller dialled, when the trunk may present it.
        sip_number=call.caller.called_number if call.caller.called_number in trunk.numbers else "",
        room_name=room_name,
        participant_identity=human,
        participant_name="hand-off",
        wait_until_answered=True,
    )
    request.ringing_timeout.FromSeconds(ring)
    logger.info(
        "call.warm_handoff_dialing",
        extra={**call.log_extra, "trunk": trunk.sip_trunk_id, "ring_seconds": ring},
    )
    try:
        await lk.sip.create_sip_participant(request, timeout=ring + _DIAL_MARGIN_SECONDS)
    except api.ServerError as exc:
        status = exc.metadata.get("sip_status_code", "")
        raise _NotConnected(f"sip_{status}" if status else exc.code) from exc
    except (TimeoutError, OSError) as exc:
        raise _NotConnected("dial_timeout") from exc


async def warm_handoff(
    session: AgentSession[None], call: CallSession, config: AgentConfig, number: str
) -> bool:
    """Put the caller through to `number` after briefing the person; False: back to the agent."""
    ctx = get_job_context()
    room = ctx.room
    language = config.language
    human = f"handoff-{secrets.token_hex(4)}"
    extra = {**call.log_extra, "human": human}
    hold = session.say(phrases.line("hold", language), allow_interruptions=False)
    # What the caller says on hold is not a turn for the model.
    session.input.set_audio_enabled(False)
    summary = asyncio.create_task(
        summarise(session, language, call.log_extra), name="handoff_summary"
    )
    legs = _Legs(room, ctx.api, call.caller.identity, human, extra)
    loop = asyncio.get_running_loop()
    started = loop.time()
    connected = False
    try:
        tts = session.tts
        if tts is None:
            raise _NotConnected("no_tts")
        await legs.open(tts.sample_rate)
        await _dial(ctx.api, call, room.name, number, human)
        logger.info(
            "call.warm_handoff_answered",
            extra={**extra, "after_seconds": round(loop.time() - started, 1)},
        )
        await legs.answered()
        whisper = f"{phrases.line('handoff_whisper', language)} {await summary}"
        await legs.say(session, whisper)
        if legs.human_left.is_set():
            raise _NotConnected("hung_up_during_summary")
        await legs.connect()
        connected = True
    except _NotConnected as exc:
        cause = exc.__cause__
        logger.info(
            "call.warm_handoff_no_answer",
            extra={**extra, "reason": exc.reason, "error": str(cause) if cause else ""},
        )
    except Exception:
        logger.exception("call.warm_handoff_failed", extra=extra)
    finally:
        summary.cancel()
        if not connected:  # before the agent is heard again: a late answer hears nothing
            await _drop(ctx.api, room.name, human)
        try:
            await legs.close(restore=not connected)
        except Exception:  # a room already gone: nothing left to restore
            logger.warning("call.warm_handoff_cleanup_failed", extra=extra, exc_info=True)
    if not connected:
        if call.ended_at is not None:
            return False  # the caller hung up while on hold: nobody to go back to
        await hold
        session.input.set_audio_enabled(True)
        # The caller hears it and the transcript keeps it; the agent carries on from here.
        session.say(phrases.line("nobody_answered", language))
        return False
    logger.info("call.warm_handoff_connected", extra=extra)
    await call.mark_handed_off()
    call.mark_ended()  # the agent's part of the call, the part we charge, ends here
    _watch_until_one_leaves(room, {call.caller.identity, human})
    _leave_room_standing(session)
    return True


async def _drop(lk: api.LiveKitAPI, room_name: str, human: str) -> None:
    """Hang up the person's leg if it is still in the room (it answered too late)."""
    try:
        await lk.room.remove_participant(
            api.RoomParticipantIdentity(room=room_name, identity=human)
        )
    except _DROP_ERRORS:
        pass  # not in the room (the usual case after no answer), or LiveKit is away


def _leave_room_standing(session: AgentSession[None]) -> None:
    """Close the AI's session but keep the room: the caller and the person are talking in it.

    The session was started with `delete_room_on_close` (every other ending hangs up by
    deleting the room); RoomIO reads that option when the session closes, so it is turned
    off for this one session first.
    """
    session.room_io._options.delete_room_on_close = False
    session.shutdown(drain=False)
