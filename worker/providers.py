"""The one place that builds the session's providers (VAD, STT, LLM, TTS) and turn handling.

Every AI provider is an OpenAI-compatible client on `OPENAI_BASE_URL`; nothing here names a
LiveKit Cloud model, so turn detection and barge-in run offline on the Silero VAD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from livekit.agents import TurnHandlingOptions, vad
from livekit.plugins import openai, silero

from shared.models import Agent
from shared.settings import Settings

DEFAULT_VOICE = "alloy"


@dataclass(frozen=True)
class Providers:
    stt: openai.STT
    llm: openai.LLM
    tts: openai.TTS


def load_vad(settings: Settings) -> vad.VAD:
    """Silero VAD from the wheel's bundled model (prewarmed once per worker process)."""
    return silero.VAD.load(min_silence_duration=settings.worker_vad_min_silence)


def stt_language(agent_language: str) -> str:
    """ISO 639-1 code the transcription API takes ("ar-EG" -> "ar")."""
    return (agent_language or "en").split("-")[0].split("_")[0].lower() or "en"


def build_providers(settings: Settings, agent: Agent) -> Providers:
    api_key = settings.openai_api_key or "unset"
    base_url = settings.openai_base_url
    return Providers(
        stt=openai.STT(
            model=settings.openai_stt_model,
            language=stt_language(agent.language),
            detect_language=settings.worker_stt_detect_language,
            base_url=base_url,
            api_key=api_key,
        ),
        llm=openai.LLM(
            model=agent.chat_model or settings.openai_chat_model,
            base_url=base_url,
            api_key=api_key,
            timeout=httpx2.Timeout(settings.openai_timeout_seconds, connect=5.0),
            max_retries=settings.openai_max_retries,
        ),
        tts=openai.TTS(
            model=settings.openai_tts_model,
            voice=agent.voice or DEFAULT_VOICE,
            base_url=base_url,
            api_key=api_key,
            response_format="pcm",
        ),
    )


def turn_handling(settings: Settings) -> TurnHandlingOptions:
    """VAD-based turns and barge-in with the thresholds from settings (no cloud models)."""
    options: dict[str, Any] = {
        "turn_detection": "vad",
        "endpointing": {
            "mode": "fixed",
            "min_delay": settings.worker_endpointing_min_delay,
            "max_delay": settings.worker_endpointing_max_delay,
        },
        "interruption": {
            "enabled": True,
            "mode": "vad",
            "min_duration": settings.worker_interruption_min_duration,
            "min_words": settings.worker_interruption_min_words,
            "resume_false_interruption": settings.worker_resume_false_interruption,
            "false_interruption_timeout": settings.worker_false_interruption_timeout,
        },
        "preemptive_generation": {"enabled": settings.worker_preemptive_generation},
    }
    handling: TurnHandlingOptions = TurnHandlingOptions(**options)  # type: ignore[typeddict-item]
    return handling
