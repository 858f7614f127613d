"""The session's providers and turn handling as built from settings (no server needed)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from uuid import uuid4

import av
import numpy as np
import pytest
from livekit.agents import inference
from livekit.plugins import silero
from pydantic import ValidationError

from shared.models import Agent
from shared.settings import Settings
from worker import providers, recording


def test_barge_in_pauses_at_the_vads_start_of_speech_and_resumes_without_words() -> None:
    handling = providers.turn_handling(Settings())
    interruption = handling["interruption"]
    assert interruption["mode"] == "vad"
    # The VAD's minimum speech (50 ms) is all it takes to pause the agent...
    assert interruption["min_duration"] == 0.05
    # ...and a pause that no words follow (a cough, "uh-huh") resumes the reply.
    assert interruption["resume_false_interruption"] is True
    assert interruption["false_interruption_timeout"] == 2.0


def test_turns_end_by_the_local_end_of_turn_model_or_silence_alone() -> None:
    detector = providers.turn_handling(Settings())["turn_detection"]
    assert isinstance(detector, inference.TurnDetector) and detector.model.endswith("v1-mini")
    assert detector is providers.turn_handling(Settings())["turn_detection"]  # one a process
    vad_only = providers.turn_handling(Settings(worker={"turn_detection": "vad"}))
    assert vad_only["turn_detection"] == "vad"


def test_the_end_of_turn_model_refuses_a_vad_that_ends_speech_too_soon() -> None:
    with pytest.raises(ValidationError, match="WORKER_VAD_MIN_SILENCE"):
        Settings(worker={"vad_min_silence": 0.2})
    assert Settings(worker={"vad_min_silence": 0.2, "turn_detection": "vad"})


def test_the_native_vad_or_the_silero_plugin_by_setting() -> None:
    assert isinstance(providers.load_vad(Settings()), inference.VAD)
    plugin = providers.load_vad(Settings(worker={"vad": "silero"}))
    assert isinstance(plugin, silero.VAD)
    assert plugin.min_silence_duration == Settings().worker.vad_min_silence


def test_interruption_thresholds_are_settings() -> None:
    settings = Settings(worker={"interruption_min_duration": 0.3, "interruption_min_words": 2})
    interruption = providers.turn_handling(settings)["interruption"]
    assert (interruption["min_duration"], interruption["min_words"]) == (0.3, 2)


def test_vad_starts_speech_after_one_window_and_its_thresholds_are_settings() -> None:
    assert providers.vad_options(Settings())["min_speech_duration"] == 0.032  # one 32 ms window
    options = providers.vad_options(
        Settings(worker={"vad_min_speech": 0.1, "vad_min_silence": 0.4})
    )
    assert options == {"min_speech_duration": 0.1, "min_silence_duration": 0.4}


async def test_a_calls_providers_share_one_client_and_the_process_tls_context() -> None:
    agent = Agent(
        id=uuid4(), workspace_id=uuid4(), name="Sara", instructions="Help.", greeting="",
        modality="voice", language="ar-EG", voice=None, chat_model=None, active=True,
        max_call_seconds=600, handoff_number=None, created_at=datetime.now(UTC),
    )  # fmt: skip
    first = providers.build_providers(Settings(), agent)
    second = providers.build_providers(Settings(), agent)
    try:
        assert first.client is not second.client
        assert providers.tls_context() is providers.tls_context()
    finally:
        await first.aclose()
        await second.aclose()


def test_caller_audio_is_taken_at_the_vads_rate_without_gain_control() -> None:
    options = providers.audio_input(Settings())
    assert (options.sample_rate, options.frame_size_ms, options.auto_gain_control) == (
        16000, 50, False
    )  # fmt: skip
    tuned = providers.audio_input(
        Settings(worker={"input_sample_rate": 24000, "input_frame_ms": 20,
                         "auto_gain_control": True})
    )  # fmt: skip
    assert (tuned.sample_rate, tuned.frame_size_ms, tuned.auto_gain_control) == (24000, 20, True)


@pytest.mark.parametrize("frame_ms", [0, 15, 200])
def test_a_caller_frame_size_off_the_10_ms_grid_is_refused_at_start_up(frame_ms: int) -> None:
    with pytest.raises(ValidationError, match="input_frame_ms"):
        Settings(worker={"input_frame_ms": frame_ms})


def test_an_audio_rate_no_codec_takes_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="8000, 16000, 24000 or 48000"):
        Settings(worker={"input_sample_rate": 22050})
    with pytest.raises(ValidationError, match="8000, 16000, 24000 or 48000"):
        Settings(worker={"recording_sample_rate": 44100})


@pytest.mark.parametrize("rate", [16000, 48000])
def test_opus_header_rate_is_read_from_a_real_ogg_file(rate: int) -> None:
    """An Ogg Opus file written by PyAV's libopus (the recorder's encoder) at `rate`; the
    worker tests read a real call's recording the same way."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=rate, layout="stereo")
        block = np.zeros((2, rate // 10), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    assert recording.opus_input_rate(buffer.getvalue()) == rate
    assert recording.opus_input_rate(b"not an ogg file") is None
