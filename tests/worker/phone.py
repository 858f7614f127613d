"""A test caller: joins a LiveKit room as a SIP participant, speaks real audio, listens.

It uses the `livekit` Python SDK with a token of kind SIP and the `sip.*` attributes a real
SIP bridge sets, so the worker sees exactly what a phone call through livekit-sip looks like.
Audio goes out continuously (silence between utterances, like RTP), and every frame of the
agent's audio is timed and measured (tests/support/audio.py), so tests can tell when the
agent speaks and stops.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import ClassVar

from livekit import api, rtc

from tests.support.audio import CallerAudio, rms

SAMPLE_RATE = 48_000
FRAME_MS = 10
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000


def sip_token(
    *,
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    caller_number: str,
    called_number: str,
    call_sid: str,
    agent_name: str | None,
    extra_attributes: dict[str, str] | None = None,
) -> str:
    """A participant token of kind SIP with the attributes livekit-sip sets on inbound calls."""
    attributes = {
        "sip.callID": f"SCL_{call_sid}",
        "sip.callStatus": "active",
        "sip.phoneNumber": caller_number,
        "sip.trunkPhoneNumber": called_number,
        "sip.ruleID": "SDR_test",
        "sip.trunkID": "ST_test",
        "wassla.call_sid": call_sid,
        **(extra_attributes or {}),
    }
    token = (
        api.AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_name("Phone caller")
        .with_kind("sip")
        .with_attributes(attributes)
        .with_grants(api.VideoGrants(room_join=True, room=room))
    )
    if agent_name:
        # What a SIP dispatch rule's room_config does: dispatch our named agent to the room.
        token = token.with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=agent_name)])
        )
    return token.to_jwt()


@dataclass
class Phone(CallerAudio):
    """One caller in one room."""

    QUIET_SECONDS: ClassVar[float] = 0.5

    url: str
    token: str
    room: rtc.Room = field(default_factory=rtc.Room)
    heard: list[tuple[float, float]] = field(default_factory=list)  # (monotonic time, rms)
    speech_ended_at: float | None = None
    speech_started_at: float | None = None
    subscribed_at: float | None = None
    _queue: bytearray = field(default_factory=bytearray)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _source: rtc.AudioSource | None = None
    _disconnected: asyncio.Event = field(default_factory=asyncio.Event)

    async def dial(self) -> None:
        self.room.on("track_subscribed", self._on_track)
        self.room.on("disconnected", lambda *_: self._disconnected.set())
        await self.room.connect(self.url, self.token)
        self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=50)
        track = rtc.LocalAudioTrack.create_audio_track("phone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._spawn(self._pump())

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(
        self, track: rtc.Track, _pub: rtc.RemoteTrackPublication, _p: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            self.subscribed_at = time.monotonic()
            self._spawn(self._listen(track))

    async def _listen(self, track: rtc.Track) -> None:
        stream = rtc.AudioStream.from_track(track=track, sample_rate=16_000, num_channels=1)
        try:
            async for event in stream:
                self.hear(rms(bytes(event.frame.data)))
        finally:
            # Cancelled by hang_up, an open stream stays subscribed to the SDK's events, which
            # then land on a closed loop as the test process exits ("error putting to queue").
            await stream.aclose()

    async def _pump(self) -> None:
        """Send 10 ms frames in real time: queued speech, else silence (like RTP)."""
        assert self._source is not None
        frame_bytes = SAMPLES_PER_FRAME * 2
        next_at = time.monotonic()
        while True:
            if self._queue:
                chunk = bytes(self._queue[:frame_bytes]).ljust(frame_bytes, b"\0")
                del self._queue[:frame_bytes]
                if not self._queue:
                    self.speech_ended_at = time.monotonic() + FRAME_MS / 1000
            else:
                chunk = b"\0" * frame_bytes
            await self._source.capture_frame(
                rtc.AudioFrame(chunk, SAMPLE_RATE, 1, SAMPLES_PER_FRAME)
            )
            next_at += FRAME_MS / 1000
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def say(self, pcm: bytes) -> float:
        """Queue speech (48 kHz mono PCM); returns when it will start, in monotonic time."""
        self.speech_ended_at = None
        start = time.monotonic() + len(self._queue) / 2 / SAMPLE_RATE
        self.speech_started_at = start
        self._queue.extend(pcm)
        return start

    def hearing_report(self) -> str:
        loudest = max((level for _, level in self.heard), default=0)
        return (
            f"subscribed at {self.subscribed_at}, {len(self.heard)} frames heard,"
            f" loudest {loudest:.0f}"
        )

    async def wait_hung_up(self, within: float = 30.0) -> None:
        await asyncio.wait_for(self._disconnected.wait(), within)

    @property
    def hung_up(self) -> bool:
        return self._disconnected.is_set()

    async def hang_up(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._source is not None:
            await self._source.aclose()
        await self.room.disconnect()
