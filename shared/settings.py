"""The one `Settings` object: every knob of the gateway, the worker and the CLI.

Read once at start-up (`Settings()` reads the environment and `.env`) and passed down;
nothing else in the code reads `os.environ`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import MissingSetting

# Secrets and endpoints a command may require, by field name -> environment variable.
_ENV_NAMES = {
    "database_url": "DATABASE_URL",
    "public_base_url": "PUBLIC_BASE_URL",
    "twilio_account_sid": "TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
    "openai_api_key": "OPENAI_API_KEY",
    "livekit_url": "LIVEKIT_URL",
    "livekit_api_key": "LIVEKIT_API_KEY",
    "livekit_api_secret": "LIVEKIT_API_SECRET",
    "livekit_sip_uri": "LIVEKIT_SIP_URI",
    "jwt_secret": "WASSLA_JWT_SECRET",
    "recordings_bucket": "RECORDINGS_BUCKET",
    "s3_endpoint_url": "S3_ENDPOINT_URL",
    "s3_access_key_id": "S3_ACCESS_KEY_ID",
    "s3_secret_access_key": "S3_SECRET_ACCESS_KEY",
}


class Settings(BaseSettings):
    """Configuration from the environment (names are the upper-case field names unless aliased)."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    env: Literal["development", "production"] = Field("development", validation_alias="WASSLA_ENV")

    # Storage
    database_url: str | None = None
    data_dir: Path = Field(Path(".wassla"), validation_alias="WASSLA_DATA_DIR")
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10

    # HTTP gateway
    host: str = "0.0.0.0"
    port: int = 8080
    public_base_url: str = "http://127.0.0.1:8080"

    # Twilio
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_timeout_seconds: float = 10.0
    # SMS replies: generated and sent by the gateway process that acknowledged the text
    # ("inline"), or by separate `python -m sms_sender` processes ("worker"),
    # so acknowledgements never share an event loop with the model client.
    sms_replies: Literal["inline", "worker"] = "inline"
    # `python -m sms_sender` answers `GET /` here (Fly's check); None: off.
    sms_worker_health_port: int | None = None

    # OpenAI-compatible API (chat, STT, TTS)
    openai_api_key: str | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_chat_model: str = "gpt-4o-mini"
    openai_stt_model: str = "gpt-4o-mini-transcribe"
    openai_tts_model: str = "gpt-4o-mini-tts"
    openai_timeout_seconds: float = 20.0
    openai_max_retries: int = 2
    # Earlier messages a text-chat turn (SMS, TwiML loop) gives the model: one window for both.
    chat_history_messages: int = Field(20, ge=1, le=200)

    # LiveKit
    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = None
    livekit_sip_uri: str | None = None
    # The inbound SIP trunk and dispatch rule `wassla livekit setup` keeps in step with the
    # connected voice numbers (found again by name, so a second run updates, never duplicates).
    livekit_sip_trunk_name: str = "wassla-inbound"
    livekit_sip_dispatch_rule_name: str = "wassla-inbound"
    livekit_sip_room_prefix: str = "call-"
    # Who may send calls into the trunk: CIDR blocks (comma-separated in the environment;
    # empty: any address) and/or digest credentials (Twilio's `<Sip username= password=>`).
    livekit_sip_allowed_addresses: Annotated[list[str], NoDecode] = []
    livekit_sip_auth_username: str | None = None
    livekit_sip_auth_password: str | None = None
    worker_agent_name: str = "wassla-voice"
    worker_drain_timeout_seconds: int = 285
    worker_health_port: int = 8081
    # Voice worker: barge-in (VAD-based, offline) and endpointing thresholds
    # Caller speech that pauses the agent: 0.05 s past the VAD's start of speech, so
    # barge-in feels immediate (figures: bench/README.md). A pause with no words by
    # false_interruption_timeout (a cough, "uh-huh") resumes the reply.
    worker_interruption_min_duration: float = 0.05
    worker_interruption_min_words: int = 0  # >0 also requires that many transcribed words
    worker_false_interruption_timeout: float = 2.0  # no words by then: resume the agent
    worker_resume_false_interruption: bool = True
    worker_endpointing_min_delay: float = 0.5  # silence after speech that ends a turn
    worker_endpointing_max_delay: float = 3.0
    worker_stt_detect_language: bool = True  # callers may speak another language
    worker_preemptive_generation: bool = True  # start the LLM on the transcript, pre-turn-end
    worker_vad_min_silence: float = 0.55  # Silero: silence that ends a speech segment
    # Silero: speech that starts a segment (and so can pause the agent). One 32 ms window at
    # 16 kHz instead of the plugin's two, so barge-in starts sooner (bench/README.md).
    worker_vad_min_speech: float = 0.032
    # The caller's audio as the session hears it. Phone audio is 8 kHz narrowband, and the
    # Silero VAD runs at 16 kHz: taking 16 kHz from the track spares a resampler per call
    # (the framework's default is 24 kHz). AGC runs the WebRTC audio processor on every
    # frame; carriers already level phone audio, and the VAD and STT do not need it.
    worker_input_sample_rate: int = 16000
    worker_auto_gain_control: bool = False
    # The stored call recording (Opus, caller left, agent right): 16 kHz keeps all of phone
    # audio for less encoding CPU than the framework's 48 kHz (worker/recording.py).
    worker_recording_sample_rate: int = 16000
    # Playground (non-SIP) sessions without an agent in job/room metadata use this agent.
    worker_playground_agent_id: str | None = None
    # Live calls are touched every heartbeat; a call untouched for stale_seconds is closed
    # and charged by the sweeper (worker start-up and every sweep interval).
    worker_heartbeat_seconds: float = 15.0
    worker_stale_call_seconds: float = 90.0
    worker_sweep_interval_seconds: float = 60.0
    worker_max_call_warning_seconds: float = 30.0  # warn this long before max call length
    # Jobs run in a process each (isolation; the tested mode) or as threads of one process
    # (less memory a call, but every call shares one GIL; figures: bench/README.md).
    worker_job_executor: Literal["process", "thread"] = "process"
    worker_num_idle_processes: int | None = None  # None: the framework's default (CPU count)
    worker_max_calls: int = 25  # concurrent calls one worker takes before it reports full
    worker_job_memory_warn_mb: float = 500.0

    # Recordings: a local directory under data_dir, or an S3-compatible private bucket
    recordings_backend: Literal["local", "s3"] = "local"
    recordings_bucket: str = "call-recordings"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    recordings_url_ttl_seconds: int = 300

    # Voice over TwiML (<Gather>/<Say> loop). Twilio gives each webhook 15 s in total, so a
    # turn waits for the model at most voice_turn_deadline_seconds, then says a filler and
    # collects the reply on a <Redirect>, waiting up to voice_collect_wait_seconds each time.
    voice_turn_deadline_seconds: float = 9.0
    voice_collect_wait_seconds: float = 9.0
    voice_max_collect_waits: int = 3  # then apologise and take the next turn
    voice_speech_timeout_seconds: int = 2  # pause that ends an utterance ("auto" cuts callers off)
    voice_gather_timeout_seconds: int = 6  # wait for the caller to start speaking
    voice_speech_model: str | None = None  # e.g. "googlev2_telephony"; None: Twilio's default
    voice_max_silent_turns: int = 3  # empty turns in a row before goodbye
    voice_record_calls: bool = True
    voice_recording_fetch_attempts: int = 5  # on top of the REST client's own retries
    voice_recording_retry_seconds: float = 2.0

    # Channels API user tokens (Supabase-style HS256)
    jwt_secret: str | None = Field(None, validation_alias="WASSLA_JWT_SECRET")

    @field_validator("public_base_url", "twilio_api_base_url", "openai_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("worker_input_sample_rate", "worker_recording_sample_rate")
    @classmethod
    def _audio_rate(cls, value: int) -> int:
        if value not in (8000, 16000, 24000, 48000):
            raise ValueError("must be 8000, 16000, 24000 or 48000 (Hz)")
        return value

    @field_validator("livekit_sip_allowed_addresses", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def require(self, *fields: str) -> None:
        """Fail fast, naming the environment variables a command needs but lacks."""
        missing = [f for f in fields if not getattr(self, f)]
        if missing:
            raise MissingSetting([_ENV_NAMES.get(f, f.upper()) for f in missing])

    @property
    def livekit_configured(self) -> bool:
        return bool(self.livekit_url and self.livekit_api_key and self.livekit_api_secret)
