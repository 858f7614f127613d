"""A test caller: joins a LiveKit room as a SIP participant, speaks real audio, listens.

It uses the `livekit` Python SDK with a token of kind SIP and the `sip.*` attributes a real
SIP bridge sets, so the worker sees exactly what a phone call through livekit-sip looks like.
Audio goes out continuously (silence between utterances, like RTP), and every frame of the
agent's audio is timed and measured, so tests can tell when the agent speaks and stops.
"""

from __future__ import annotations

import asyncio
import bisect
import shutil
import struct
import subprocess
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from livekit import api, rtc

SAMPLE_RATE = 48_000
FRAME_MS = 10
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000
SPEECH_RMS = 500.0  # 16-bit RMS above which a received frame counts as agent audio


def espeak_pcm(text: str, *, voice: str = "en-us", rate: int = SAMPLE_RATE) -> bytes:
    """Real synthetic speech from Debian's espeak-ng, as 16-bit mono PCM at `rate`."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (scripts/test-deps installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
        with wave.open(str(path), "rb") as w:
            source_rate = w.getframerate()
            pcm = w.readframes(w.getnframes())
    return resample(pcm, source_rate, rate)


def resample(pcm: bytes, source_rate: int, rate: int) -> bytes:
    """Linear-interpolation resampling of 16-bit mono PCM (good enough for VAD and STT)."""
    if source_rate == rate:
        return pcm
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    n = int(len(samples) * rate / source_rate)
    out = []
    for i in range(n):
        pos = i * source_rate / rate
        j = int(pos)
        frac = pos - j
        a = samples[min(j, len(samples) - 1)]
        b = samples[min(j + 1, len(samples) - 1)]
        out.append(int(a + (b - a) * frac))
    return struct.pack(f"<{n}h", *out)


def rms(frame: bytes) -> float:
    samples = np.frombuffer(frame, dtype=np.int16).astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


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
class Phone:
    """One caller in one room."""

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
        async for event in stream:
            self.heard.append((time.monotonic(), rms(bytes(event.frame.data))))

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

    async def finish_saying(self, within: float = 30.0) -> float:
        deadline = time.monotonic() + within
        while self.speech_ended_at is None:
            if time.monotonic() > deadline:
                raise TimeoutError("speech did not finish playing")
            await asyncio.sleep(0.01)
        return self.speech_ended_at

    def _heard_since(self, after: float) -> list[tuple[float, float]]:
        """Frames heard at or after `after` (a bisect: callers poll this many times a second
        over calls of minutes, so a scan from the start would grow with the call)."""
        return self.heard[bisect.bisect_left(self.heard, after, key=lambda entry: entry[0]) :]

    def agent_speaking_at(self, after: float) -> float | None:
        """The first moment after `after` the agent's audio was loud, or None."""
        for at, level in self._heard_since(after):
            if level >= SPEECH_RMS:
                return at
        return None

    def agent_silent_since(self, after: float, quiet: float = 0.3) -> float | None:
        """Start of the first `quiet`-long stretch of silence after `after` (frames or none)."""
        last_loud = after
        for at, level in self._heard_since(after):
            if level >= SPEECH_RMS:
                last_loud = at
        if time.monotonic() - last_loud >= quiet:
            return last_loud
        return None

    def agent_stopped_after(self, onset: float, quiet: float = 0.25) -> float | None:
        """The last loud frame before the agent's first `quiet`-long silence after `onset`."""
        last_loud: float | None = None
        for at, level in self._heard_since(onset):
            if level < SPEECH_RMS:
                continue
            if last_loud is not None and at - last_loud >= quiet:
                return last_loud
            last_loud = at
        if last_loud is not None and time.monotonic() - last_loud >= quiet:
            return last_loud
        return None

    async def wait_agent_speaking(self, after: float, within: float = 20.0) -> float:
        deadline = time.monotonic() + within
        while True:
            at = self.agent_speaking_at(after)
            if at is not None:
                return at
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the agent did not speak within {within}s (subscribed at"
                    f" {self.subscribed_at}, {len(self.heard)} frames heard,"
                    f" loudest {max((lv for _, lv in self.heard), default=0):.0f})"
                )
            await asyncio.sleep(0.02)

    async def wait_agent_quiet(
        self, after: float, quiet: float = 0.5, within: float = 30.0
    ) -> float:
        """When the agent's audio last was loud before a `quiet`-long silence."""
        deadline = time.monotonic() + within
        while True:
            await asyncio.sleep(0.05)
            at = self.agent_silent_since(after, quiet)
            if at is not None:
                return at
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent did not stop speaking within {within}s")

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
