"""Both ends of a test call's audio: the caller's speech (espeak-ng), and the agent's audio
as the caller hears it, timed and measured, so a test can tell when the agent speaks and stops.

`CallerAudio` is what the two test callers share: the LiveKit participant
(tests/worker/phone.py) and the RTP endpoint behind SIPp (tests/sip/rtp.py). Each records
every frame or packet it receives with `hear()`, and marks `speech_ended_at` when its queued
speech has been sent.
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
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from tests.support.polling import eventually

SPEECH_RMS = 500.0  # 16-bit RMS above which received audio counts as the agent speaking


def espeak_pcm(
    text: str,
    *,
    voice: str = "en-us",
    rate: int = 48_000,
    words_per_minute: int | None = None,
    ssml: bool = False,
) -> bytes:
    """Real synthetic speech from Debian's espeak-ng, as 16-bit mono PCM at `rate`.

    `ssml`: `text` is SSML, e.g. `<speak>I'd like <break time="700ms"/> a table</speak>`: a
    pause inside one sentence keeps its intonation going on, as a caller's does."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (scripts/test-deps installs it)")
    options = ["-v", voice, *(["-m"] if ssml else [])]
    if words_per_minute:
        options += ["-s", str(words_per_minute)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", *options, "-w", str(path), text], check=True)
        return wav_pcm(path, rate)


def wav_pcm(path: Path, rate: int) -> bytes:
    """A 16-bit mono WAV file's samples as PCM at `rate`."""
    with wave.open(str(path), "rb") as w:
        return resample(w.readframes(w.getnframes()), w.getframerate(), rate)


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


def loud_spans(heard: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    """Stretches of loud audio in `heard` ((time, RMS) per frame, as a caller's side records
    it) separated by at least `gap` seconds of silence."""
    spans: list[tuple[float, float]] = []
    for at, level in heard:
        if level < SPEECH_RMS:
            continue
        if spans and at - spans[-1][1] < gap:
            spans[-1] = (spans[-1][0], at)
        else:
            spans.append((at, at))
    return spans


def rms(samples: bytes | npt.NDArray[np.int16]) -> float:
    """Root mean square of 16-bit samples (raw little-endian PCM or decoded)."""
    if isinstance(samples, bytes):
        samples = np.frombuffer(samples, dtype="<i2")
    if samples.size == 0:
        return 0.0
    values = samples.astype(np.float64)
    return float(np.sqrt(np.mean(values * values)))


class CallerAudio:
    """A test caller's ears and mouth: what it heard of the agent, when its own speech ended.

    Subclasses (dataclasses) hold `heard` and `speech_ended_at` as fields, and set
    QUIET_SECONDS.
    """

    QUIET_SECONDS: ClassVar[float]  # the silence `wait_agent_quiet` takes for "stopped"

    heard: list[tuple[float, float]]  # (monotonic time, rms) per frame or packet received
    speech_ended_at: float | None

    def hearing_report(self) -> str:
        """What was received so far, for a failure message."""
        return f"{len(self.heard)} frames heard"

    # --- the caller's speech ---------------------------------------------------------------

    async def finish_saying(self, within: float = 30.0) -> float:
        """When the queued speech has been sent (its last frame's end, monotonic)."""
        return await eventually(
            lambda: self.speech_ended_at,
            within=within,
            interval=0.01,
            what="the caller's speech to finish playing",
        )

    # --- the agent's audio -----------------------------------------------------------------

    def hear(self, level: float) -> None:
        self.heard.append((time.monotonic(), level))

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
        try:
            return await eventually(
                lambda: self.agent_speaking_at(after),
                within=within,
                interval=0.02,
                what="the agent's audio",
            )
        except TimeoutError:
            raise TimeoutError(
                f"the agent did not speak within {within}s ({self.hearing_report()})"
            ) from None

    async def wait_agent_quiet(
        self, after: float, quiet: float | None = None, within: float = 30.0
    ) -> float:
        """When the agent's audio last was loud before a `quiet`-long silence (default:
        QUIET_SECONDS). Looks only after a first interval, for the frames in flight."""
        quiet = self.QUIET_SECONDS if quiet is None else quiet
        deadline = time.monotonic() + within
        while True:
            await asyncio.sleep(0.05)
            at = self.agent_silent_since(after, quiet)
            if at is not None:
                return at
            if time.monotonic() > deadline:
                raise TimeoutError(f"the agent did not stop speaking within {within}s")
