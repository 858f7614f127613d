"""Turning a caller away without AI spend: a bundled clip, then the room is deleted.

The clip is pre-rendered audio shipped in the package, so refusing an unknown number or a
workspace that may not spend costs no TTS, STT or LLM call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave
from functools import lru_cache
from pathlib import Path

from livekit import rtc

logger = logging.getLogger("worker.refusal")

CLIP_PATH = Path(__file__).parent / "assets" / "unavailable.wav"
_FRAME_MS = 20
SUBSCRIBE_WAIT_SECONDS = 3.0


@lru_cache(maxsize=1)
def _clip() -> tuple[bytes, int]:
    with wave.open(str(CLIP_PATH), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{CLIP_PATH} must be 16-bit mono")
        return w.readframes(w.getnframes()), w.getframerate()


async def load_clip() -> tuple[bytes, int]:
    """The refusal clip as 16-bit mono PCM and its sample rate (read off the event loop)."""
    return await asyncio.to_thread(_clip)


async def play_clip(room: rtc.Room, pcm: bytes, sample_rate: int) -> None:
    """Publish a track, play the PCM to the room in real time, then unpublish."""
    source = rtc.AudioSource(sample_rate, 1)
    track = rtc.LocalAudioTrack.create_audio_track("refusal", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
    subscribed = asyncio.Event()
    room.on("local_track_subscribed", lambda _track: subscribed.set())
    publication = await room.local_participant.publish_track(track, options)
    try:
        # Audio captured before the caller's leg subscribes is lost: wait for it (briefly).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
        samples_per_frame = sample_rate * _FRAME_MS // 1000
        step = samples_per_frame * 2
        for start in range(0, len(pcm), step):
            chunk = pcm[start : start + step]
            if len(chunk) < step:
                chunk = chunk + b"\0" * (step - len(chunk))
            await source.capture_frame(rtc.AudioFrame(chunk, sample_rate, 1, samples_per_frame))
        await source.wait_for_playout()
    finally:
        await room.local_participant.unpublish_track(publication.sid)
        await source.aclose()
