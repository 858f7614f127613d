"""The call recording's sample rate.

livekit-agents 1.8.9 records a session (caller left, agent right) with its RecorderIO, built
inside `AgentSession.start` at a fixed 48 kHz with no option to change it. Encoding Opus at
48 kHz, and resampling every frame up to it, is the largest CPU cost of a call in the worker.
Phone audio is 8 kHz narrowband, so the recording loses nothing at 16 kHz, and libopus costs
about half as much there (figures: bench/README.md).

`use_recording_rate` sets the rate the framework's recorder is built with; the worker tests
read it back from the stored file's Opus header, so a framework upgrade that ignores it fails
there rather than silently.
"""

from __future__ import annotations

import functools
from typing import Any

from livekit.agents.voice.recorder_io import recorder_io

_ORIGINAL_INIT = recorder_io.RecorderIO.__init__


def use_recording_rate(sample_rate: int) -> None:
    """Build every later session recorder of this process at `sample_rate` (Hz)."""

    @functools.wraps(_ORIGINAL_INIT)
    def init(self: recorder_io.RecorderIO, **kwargs: Any) -> None:
        kwargs.setdefault("sample_rate", sample_rate)
        _ORIGINAL_INIT(self, **kwargs)

    recorder_io.RecorderIO.__init__ = init  # type: ignore[method-assign]


def opus_input_rate(ogg: bytes) -> int | None:
    """The input sample rate an Ogg Opus file's OpusHead declares, or None."""
    at = ogg.find(b"OpusHead")
    if at < 0 or len(ogg) < at + 16:
        return None
    return int.from_bytes(ogg[at + 12 : at + 16], "little")
