"""The one place that builds the session's providers (VAD, STT, LLM, TTS) and turn handling.

Every AI provider is an OpenAI-compatible client on `OPENAI_BASE_URL`; nothing here names a
LiveKit Cloud model: the VAD (barge-in) and the end-of-turn model run in the worker's own
processes, loaded once in the forkserver (worker/preload.py).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx2
import openai as openai_sdk
from livekit import local_inference
from livekit.agents import TurnHandlingOptions, inference, room_io, vad
from livekit.plugins import openai

from shared.models import Agent
from shared.settings import REALTIME_ONLY_STT_MODELS, Settings
from shared.voices import worker_voice
from worker import realtime_stt


@dataclass(frozen=True)
class Providers:
    stt: openai.STT
    llm: openai.LLM
    tts: openai.TTS
    client: openai_sdk.AsyncClient  # shared by the three; the caller closes it

    async def aclose(self) -> None:
        await self.client.close()


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle, and each plugin
    building its own client per call stalled every call's audio in the process."""
    return httpx2.create_ssl_context()


def vad_options(settings: Settings) -> dict[str, float]:
    """The VAD's thresholds from settings (both VADs take the same ones)."""
    return {
        "min_silence_duration": settings.worker.vad_min_silence,
        "min_speech_duration": settings.worker.vad_min_speech,
    }


def load_vad(settings: Settings) -> vad.VAD:
    """The VAD of every call in this process: the native one or the Silero plugin.

    The worker's forkserver loads it (worker/preload.py), so job processes inherit the model
    copy-on-write instead of each building its own private copy (figures:
    bench/README.md). Each call's stream keeps its own state; the model is shared."""
    options = vad_options(settings)
    if settings.worker.vad == "native":
        return _native_vad(options["min_silence_duration"], options["min_speech_duration"])
    return _silero_vad(options["min_silence_duration"], options["min_speech_duration"])


@lru_cache(maxsize=4)
def _native_vad(min_silence_duration: float, min_speech_duration: float) -> vad.VAD:
    local_inference.init_vad()  # the model singleton, before any fork
    return inference.VAD(
        min_silence_duration=min_silence_duration, min_speech_duration=min_speech_duration
    )


@lru_cache(maxsize=4)
def _silero_vad(min_silence_duration: float, min_speech_duration: float) -> vad.VAD:
    # Imported here: the plugin registers itself, and the forkserver then preloads it, only
    # in the mode that uses it.
    from livekit.plugins import silero

    return silero.VAD.load(
        min_silence_duration=min_silence_duration, min_speech_duration=min_speech_duration
    )


@lru_cache(maxsize=1)
def turn_detector() -> inference.TurnDetector:
    """The local end-of-turn model (turn-detector v1-mini, in livekit-local-inference), once
    per process image: its weights (about 250 MB) are loaded in the forkserver and shared by
    every job process; each call's stream keeps its own audio buffer."""
    local_inference.init_eot()
    return inference.TurnDetector(version="v1-mini")


def stt_language(agent_language: str) -> str:
    """ISO 639-1 code the transcription API takes ("ar-EG" -> "ar")."""
    return (agent_language or "en").split("-")[0].split("_")[0].lower() or "en"


def stt_mode(settings: Settings) -> dict[str, str]:
    """How calls are transcribed: `realtime` (streamed while the caller speaks) or `batch`
    (each utterance uploaded once the VAD has heard it end), and by which model."""
    mode = "realtime" if settings.openai.stt_streaming else "batch"
    return {"mode": mode, "model": settings.openai.stt_model}


def build_stt(settings: Settings, agent: Agent, client: openai_sdk.AsyncClient) -> openai.STT:
    """The call's STT in the mode settings choose, its failures logged (worker/realtime_stt.py)."""
    common: dict[str, Any] = {
        "model": settings.openai.stt_model,
        "language": stt_language(agent.language),
        "detect_language": settings.worker.stt_detect_language,
        "client": client,
    }
    engine: openai.STT
    if not settings.openai.stt_streaming:
        engine = openai.STT(**common, use_realtime=False)
    elif settings.openai.stt_model.startswith(REALTIME_ONLY_STT_MODELS):
        # No server-side endpointing: the client commits each utterance when its VAD hears
        # speech end. Ours, already loaded in this process, not the plugin's own default.
        engine = realtime_stt.RealtimeSTT(**common, use_realtime=True, vad=load_vad(settings))
    else:
        # The server's VAD closes an utterance before ours ends speech, so the final
        # transcript is not held back behind the end of the turn.
        silence_ms = settings.openai.stt_silence_ms
        engine = realtime_stt.RealtimeSTT(
            **common,
            use_realtime=True,
            turn_detection={"type": "server_vad", "threshold": 0.5,
                            "prefix_padding_ms": 600, "silence_duration_ms": silence_ms},
        )  # fmt: skip
    realtime_stt.log_failures(engine, mode=stt_mode(settings)["mode"], agent_id=str(agent.id))
    return engine


def build_providers(settings: Settings, agent: Agent) -> Providers:
    """STT, LLM and TTS of one call over one HTTP client (one connection pool)."""
    client = openai_sdk.AsyncClient(
        api_key=settings.openai.api_key or "unset",
        base_url=settings.openai.base_url,
        max_retries=0,  # STT and TTS retry through the session's connect options
        http_client=httpx2.AsyncClient(
            verify=tls_context(),
            timeout=httpx2.Timeout(connect=5.0, read=5.0, write=5.0, pool=5.0),
            follow_redirects=True,
            limits=httpx2.Limits(max_connections=8, keepalive_expiry=120),
        ),
    )
    llm_client = client.with_options(
        timeout=httpx2.Timeout(settings.openai.timeout_seconds, connect=5.0),
        max_retries=settings.openai.max_retries,
    )
    return Providers(
        stt=build_stt(settings, agent, client),
        llm=openai.LLM(model=agent.chat_model or settings.openai.chat_model, client=llm_client),
        tts=openai.TTS(
            model=settings.openai.tts_model,
            voice=worker_voice(agent.voice),
            response_format="pcm",
            client=client,
        ),
        client=client,
    )


def audio_input(settings: Settings) -> room_io.AudioInputOptions:
    """How the session takes the caller's track (rate, frame size and AGC from settings)."""
    return room_io.AudioInputOptions(
        sample_rate=settings.worker.input_sample_rate,
        frame_size_ms=settings.worker.input_frame_ms,
        auto_gain_control=settings.worker.auto_gain_control,
    )


def turn_handling(settings: Settings) -> TurnHandlingOptions:
    """Turns ended by the end-of-turn model (or silence alone) and VAD barge-in, with the
    thresholds from settings (no cloud models)."""
    worker = settings.worker
    options: dict[str, Any] = {
        "turn_detection": turn_detector() if worker.turn_detection == "model" else "vad",
        "endpointing": {
            "mode": worker.endpointing_mode,
            "min_delay": worker.endpointing_min_delay,
            "max_delay": worker.endpointing_max_delay,
        },
        "interruption": {
            "enabled": True,
            "mode": "vad",
            "min_duration": worker.interruption_min_duration,
            "min_words": worker.interruption_min_words,
            "resume_false_interruption": worker.resume_false_interruption,
            "false_interruption_timeout": worker.false_interruption_timeout,
        },
        "preemptive_generation": {
            "enabled": worker.preemptive_generation,
            "preemptive_tts": worker.preemptive_tts,
        },
    }
    handling: TurnHandlingOptions = TurnHandlingOptions(**options)  # type: ignore[typeddict-item]
    return handling
