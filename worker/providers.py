"""The one place that builds the session's providers (VAD, STT, LLM, TTS) and turn handling.

Every AI provider is an OpenAI-compatible client on `OPENAI_BASE_URL`; nothing here names a
LiveKit Cloud model, so turn detection and barge-in run offline on the Silero VAD.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx2
import openai as openai_sdk
from livekit.agents import TurnHandlingOptions, room_io, vad
from livekit.plugins import openai, silero

from shared.models import Agent
from shared.settings import Settings

DEFAULT_VOICE = "alloy"


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
    """The Silero VAD's thresholds from settings."""
    return {
        "min_silence_duration": settings.worker.vad_min_silence,
        "min_speech_duration": settings.worker.vad_min_speech,
    }


def load_vad(settings: Settings) -> vad.VAD:
    """Silero VAD from the wheel's bundled model, loaded once per process image.

    The worker's forkserver loads it (worker/preload.py), so job processes inherit the
    ONNX Runtime session copy-on-write instead of each building its own private copy
    (figures: bench/README.md). Its streams keep their own state; the session is shared."""
    options = vad_options(settings)
    return _silero_vad(options["min_silence_duration"], options["min_speech_duration"])


@lru_cache(maxsize=4)
def _silero_vad(min_silence_duration: float, min_speech_duration: float) -> vad.VAD:
    return silero.VAD.load(
        min_silence_duration=min_silence_duration, min_speech_duration=min_speech_duration
    )


def stt_language(agent_language: str) -> str:
    """ISO 639-1 code the transcription API takes ("ar-EG" -> "ar")."""
    return (agent_language or "en").split("-")[0].split("_")[0].lower() or "en"


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
        stt=openai.STT(
            model=settings.openai.stt_model,
            language=stt_language(agent.language),
            detect_language=settings.worker.stt_detect_language,
            client=client,
        ),
        llm=openai.LLM(model=agent.chat_model or settings.openai.chat_model, client=llm_client),
        tts=openai.TTS(
            model=settings.openai.tts_model,
            voice=agent.voice or DEFAULT_VOICE,
            response_format="pcm",
            client=client,
        ),
        client=client,
    )


def audio_input(settings: Settings) -> room_io.AudioInputOptions:
    """How the session takes the caller's track (rate and AGC from settings)."""
    return room_io.AudioInputOptions(
        sample_rate=settings.worker.input_sample_rate,
        auto_gain_control=settings.worker.auto_gain_control,
    )


def turn_handling(settings: Settings) -> TurnHandlingOptions:
    """VAD-based turns and barge-in with the thresholds from settings (no cloud models)."""
    options: dict[str, Any] = {
        "turn_detection": "vad",
        "endpointing": {
            "mode": "fixed",
            "min_delay": settings.worker.endpointing_min_delay,
            "max_delay": settings.worker.endpointing_max_delay,
        },
        "interruption": {
            "enabled": True,
            "mode": "vad",
            "min_duration": settings.worker.interruption_min_duration,
            "min_words": settings.worker.interruption_min_words,
            "resume_false_interruption": settings.worker.resume_false_interruption,
            "false_interruption_timeout": settings.worker.false_interruption_timeout,
        },
        "preemptive_generation": {"enabled": settings.worker.preemptive_generation},
    }
    handling: TurnHandlingOptions = TurnHandlingOptions(**options)  # type: ignore[typeddict-item]
    return handling
