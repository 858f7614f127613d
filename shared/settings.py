"""The one `Settings` object: every knob of the gateway, the SMS sender, the worker and the CLI.

Read once at start-up (`Settings()` reads the environment and `.env`) and passed down;
nothing else in the code reads `os.environ`. Knobs are grouped by concern (`settings.worker`,
`settings.voice`, ...); the environment keeps flat names, the group's name first
(`WORKER_MAX_CALLS` is `settings.worker.max_calls`). What each process needs is checked here,
once, by `check_process`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.errors import MissingSetting

Process = Literal["gateway", "sms_sender", "worker", "livekit_setup", "cli"]
_AUDIO_RATES = (8000, 16000, 24000, 48000)
# livekit-agents refuses a VAD whose end of speech comes sooner with its end-of-turn model.
TURN_MODEL_MIN_SILENCE = 0.25
# Transcription models OpenAI serves only over the realtime websocket (the OpenAI plugin's
# own list): natively streaming, with no server-side endpointing.
REALTIME_ONLY_STT_MODELS = ("gpt-realtime-whisper", "gpt-live-transcribe")


def _strip_trailing_slash(value: str) -> str:
    return value.rstrip("/")


def _audio_rate(value: int) -> int:
    if value not in _AUDIO_RATES:
        raise ValueError("must be 8000, 16000, 24000 or 48000 (Hz)")
    return value


class DbSettings(BaseModel):
    pool_min_size: int = 1
    pool_max_size: int = 10


class TwilioSettings(BaseModel):
    account_sid: str | None = None
    auth_token: str | None = None
    api_base_url: str = "https://api.twilio.com"
    timeout_seconds: float = 10.0

    _no_trailing_slash = field_validator("api_base_url")(_strip_trailing_slash)


class SmsSettings(BaseModel):
    # Replies generated and sent by the gateway process that acknowledged the text
    # ("inline"), or by separate `python -m sms_sender` processes ("worker"),
    # so acknowledgements never share an event loop with the model client.
    replies: Literal["inline", "worker"] = "inline"
    # `python -m sms_sender` answers `GET /` here (Fly's check) and `GET /metrics`
    # (Prometheus); None: off.
    worker_health_port: int | None = None
    # A process working on a reply holds its claim for lease_seconds and renews every
    # claim it holds each lease_seconds / 3 while it works; a dead process's replies are
    # taken over (pending) or marked unknown (sending: never re-sent) once that lapses.
    lease_seconds: float = Field(5.0, gt=0)
    # How often a process looks for lapsed leases (and stuck or too-old replies).
    sweep_interval_seconds: float = Field(2.0, gt=0)


class OpenAISettings(BaseModel):
    """The OpenAI-compatible API: chat (SMS, TwiML loop, worker), STT and TTS (worker)."""

    api_key: str | None = None
    base_url: str = "https://api.openai.com/v1"
    chat_model: str = "gpt-4o-mini"
    stt_model: str = "gpt-4o-mini-transcribe"
    # The worker streams the caller's audio to the realtime transcription websocket, so the
    # transcript is ready when they stop; off: each utterance goes to /audio/transcriptions
    # once it has ended, for OpenAI-compatible servers without realtime transcription.
    stt_streaming: bool = True
    # Silence after which realtime transcription's server VAD closes an utterance and sends
    # its final transcript, which starts the reply (preemptive generation): 200 ms, when the
    # end-of-turn model starts its prediction, so the transcript is ready about when a
    # finished turn ends. A longer pause splits an utterance into two items, which the turn
    # joins (figures: bench/README.md).
    stt_silence_ms: int = Field(200, ge=100, le=2000)
    tts_model: str = "gpt-4o-mini-tts"
    timeout_seconds: float = 20.0
    max_retries: int = 2

    _no_trailing_slash = field_validator("base_url")(_strip_trailing_slash)

    @model_validator(mode="after")
    def _stt_model_has_its_endpoint(self) -> OpenAISettings:
        if not self.stt_streaming and self.stt_model.startswith(REALTIME_ONLY_STT_MODELS):
            raise ValueError(
                f"OPENAI_STT_MODEL={self.stt_model} is served only over realtime transcription:"
                " set OPENAI_STT_STREAMING=true or choose another model"
            )
        return self


class LiveKitSettings(BaseModel):
    url: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    sip_uri: str | None = None
    # The inbound SIP trunk and dispatch rule `wassla livekit setup` keeps in step with the
    # connected voice numbers (found again by name, so a second run updates, never duplicates).
    sip_trunk_name: str = "wassla-inbound"
    sip_dispatch_rule_name: str = "wassla-inbound"
    sip_room_prefix: str = "call-"
    # Who may send calls into the trunk: CIDR blocks (comma-separated in the environment;
    # empty: any address) and/or digest credentials (Twilio's `<Sip username= password=>`).
    sip_allowed_addresses: Annotated[list[str], NoDecode] = []
    sip_auth_username: str | None = None
    sip_auth_password: str | None = None
    # The outbound trunk a warm hand-off dials the person through (`wassla livekit setup`
    # creates it once an address is set; the worker finds it by name): the carrier's SIP
    # address (host[:port], e.g. a Twilio Elastic SIP Trunk's termination URI), the caller ID
    # it presents (unset: our connected voice numbers) and the carrier's digest credentials.
    sip_outbound_trunk_name: str = "wassla-outbound"
    sip_outbound_address: str | None = None
    sip_outbound_number: str | None = None
    sip_outbound_transport: Literal["auto", "udp", "tcp", "tls"] = "auto"
    sip_outbound_auth_username: str | None = None
    sip_outbound_auth_password: str | None = None

    @field_validator("sip_allowed_addresses", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def configured(self) -> bool:
        return bool(self.url and self.api_key and self.api_secret)


class WorkerSettings(BaseModel):
    """The LiveKit voice worker."""

    agent_name: str = "wassla-voice"
    drain_timeout_seconds: int = 285
    health_port: int = 8081
    # Prometheus `GET /metrics` of the worker and all its job processes; None: off.
    metrics_port: int | None = None
    # Barge-in (VAD-based, offline) and endpointing thresholds.
    # Caller speech that pauses the agent: 0.05 s past the VAD's start of speech, so
    # barge-in feels immediate (figures: bench/README.md). A pause with no words by
    # false_interruption_timeout (a cough, "uh-huh") resumes the reply.
    interruption_min_duration: float = 0.05
    interruption_min_words: int = 0  # >0 also requires that many transcribed words
    false_interruption_timeout: float = 2.0  # no words by then: resume the agent
    resume_false_interruption: bool = True
    # Who decides the caller has finished: the local end-of-turn model on the caller's audio
    # ("model": livekit-agents' turn-detector v1-mini, no cloud), so a finished sentence is
    # answered after endpointing_min_delay and a pause mid-sentence is waited for up to
    # endpointing_max_delay; or silence alone ("vad": every pause of min_delay ends the turn,
    # which cut callers off mid-sentence; figures: bench/README.md).
    turn_detection: Literal["model", "vad"] = "model"
    # Silence after speech that ends a turn the model calls finished (VAD-only: every turn).
    # The VAD's end of speech (vad_min_silence) comes first, so a shorter delay gains nothing.
    endpointing_min_delay: float = 0.3
    # The longest wait for a caller the model expects to go on: above a 600-800 ms pause
    # mid-sentence plus the VAD's start of speech when they do (bench/README.md, cut-offs).
    endpointing_max_delay: float = 1.5
    # "dynamic" learns min_delay from the caller's own pauses between utterances.
    endpointing_mode: Literal["fixed", "dynamic"] = "fixed"
    stt_detect_language: bool = True  # callers may speak another language
    preemptive_generation: bool = True  # start the LLM on the transcript, pre-turn-end
    # Also synthesize that preemptive reply before the turn ends, so the first audio is
    # ready when it does; a reply the caller talks over is discarded (its TTS paid for).
    preemptive_tts: bool = False
    # The VAD: livekit-agents' native Silero ("native", livekit-local-inference: one model
    # in the process, cheaper per 32 ms window than the plugin's ONNX Runtime session;
    # bench/README.md) or the Silero plugin ("silero").
    vad: Literal["native", "silero"] = "native"
    # Silence that ends a speech segment. The end-of-turn model asks for at least 0.25 s
    # (its prediction starts at 0.2 s of silence); the end of speech is when a turn can end.
    vad_min_silence: float = 0.3
    # Speech that starts a segment (and so can pause the agent). One 32 ms window at
    # 16 kHz instead of the plugin's two, so barge-in starts sooner (bench/README.md).
    vad_min_speech: float = 0.032
    # The caller's audio as the session hears it. Phone audio is 8 kHz narrowband, and the
    # Silero VAD runs at 16 kHz: taking 16 kHz from the track spares a resampler per call
    # (the framework's default is 24 kHz). AGC runs the WebRTC audio processor on every
    # frame; carriers already level phone audio, and the VAD and STT do not need it.
    input_sample_rate: int = 16000
    # How much of the caller's audio the track hands the session at a time: the VAD, the
    # transcription and the end-of-turn model see speech up to one frame late; 20 ms answers
    # sooner for a fifth more CPU a call (figures: bench/README.md). Whole 10 ms steps: the
    # WebRTC audio processor (auto_gain_control) works in 10 ms blocks.
    input_frame_ms: int = Field(50, ge=10, le=100, multiple_of=10)
    auto_gain_control: bool = False
    # The stored call recording (Opus, caller left, agent right): 16 kHz keeps all of phone
    # audio for less encoding CPU than the framework's 48 kHz (worker/recording.py).
    recording_sample_rate: int = 16000
    # Playground (non-SIP) sessions without an agent in job/room metadata use this agent.
    playground_agent_id: str | None = None
    # Live calls are touched every heartbeat; a call untouched for stale_seconds is closed
    # and charged by the sweeper (worker start-up and every sweep interval).
    heartbeat_seconds: float = 15.0
    stale_call_seconds: float = 90.0
    sweep_interval_seconds: float = 60.0
    max_call_warning_seconds: float = 30.0  # warn this long before max call length
    # Jobs run in a process each (isolation; the tested mode) or as threads of one process
    # (less memory a call, but every call shares one GIL; figures: bench/README.md).
    job_executor: Literal["process", "thread"] = "process"
    num_idle_processes: int | None = None  # None: the framework's default (CPU count)
    max_calls: int = 25  # concurrent calls one worker takes before it reports full
    job_memory_warn_mb: float = 500.0

    _rates = field_validator("input_sample_rate", "recording_sample_rate")(_audio_rate)

    @model_validator(mode="after")
    def _model_hears_enough_silence(self) -> WorkerSettings:
        if self.turn_detection == "model" and self.vad_min_silence < TURN_MODEL_MIN_SILENCE:
            raise ValueError(
                f"WORKER_VAD_MIN_SILENCE must be at least {TURN_MODEL_MIN_SILENCE} s with"
                " WORKER_TURN_DETECTION=model (the end-of-turn model needs that much silence)"
            )
        return self


class RecordingsSettings(BaseModel):
    """Call recordings: a local directory under data_dir, or an S3-compatible private bucket."""

    backend: Literal["local", "s3"] = "local"
    bucket: str = "call-recordings"
    url_ttl_seconds: int = 300


class S3Settings(BaseModel):
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None


class VoiceLoopSettings(BaseModel):
    """Voice over TwiML (the <Gather>/<Say> loop).

    Twilio gives each webhook 15 s in total, so a turn waits for the model at most
    turn_deadline_seconds, then says a filler and collects the reply on a <Redirect>,
    waiting up to collect_wait_seconds each time.
    """

    turn_deadline_seconds: float = 9.0
    collect_wait_seconds: float = 9.0
    max_collect_waits: int = 3  # then apologise and take the next turn
    speech_timeout_seconds: int = 2  # pause that ends an utterance ("auto" cuts callers off)
    speech_model: str | None = None  # e.g. "googlev2_telephony"; None: Twilio's default
    # Silence is one rule for both voice paths, in `calls`: a <Gather> waits
    # calls.keypad_digit_timeout_seconds (Twilio's one timeout is also the keypad's pause
    # between keys), and the loop counts those empty waits against calls.idle_prompt_seconds
    # and calls.idle_goodbye_seconds (what gather_timeout_seconds and max_silent_turns were).
    record_calls: bool = True
    recording_fetch_attempts: int = 5  # on top of the REST client's own retries
    recording_retry_seconds: float = 2.0


class CallFlowSettings(BaseModel):
    """What keeps a call moving on both voice paths (the TwiML loop and the LiveKit worker)."""

    # The model's first token or first audio this late: the caller hears a short filler
    # instead of silence.
    late_reply_filler_seconds: float = 1.0
    # Caller silence before "are you still there?", then before goodbye and hang-up; an
    # agent's own idle_prompt_seconds / idle_goodbye_seconds override them.
    idle_prompt_seconds: float = 12.0
    idle_goodbye_seconds: float = 8.0
    # Keypad entries (an order number): `#` ends one, so does this pause between digits.
    keypad_digit_timeout_seconds: float = 3.0
    keypad_max_digits: int = 32  # longer entries are cut here (bounded input)
    # Model or TTS failures in a row before an agent with a hand-off number hands off.
    failures_before_handoff: int = 2
    # A warm hand-off rings the person this long before telling the caller nobody answered.
    warm_ring_seconds: int = 25


class DevSettings(BaseModel):
    """`wassla dev`: the local livekit-server it starts when LIVEKIT_URL is unset."""

    # livekit-server's own defaults (signal, ICE over TCP, ICE over UDP), all on loopback;
    # change them when another LiveKit already runs here.
    livekit_port: int = 7880
    livekit_rtc_tcp_port: int = 7881
    livekit_rtc_udp_port: int = 7882


# What each process cannot run without, anywhere; in production every process also needs
# a real database (never the embedded one) and the gateway its public https URL and the
# Channels API's token secret.
_PROCESS_NEEDS: dict[Process, tuple[str, ...]] = {
    "gateway": ("twilio.auth_token",),  # every webhook's signature check
    "sms_sender": ("twilio.account_sid", "twilio.auth_token"),
    "worker": ("livekit.url", "livekit.api_key", "livekit.api_secret"),
    "livekit_setup": ("livekit.url", "livekit.api_key", "livekit.api_secret"),
    "cli": (),
}
_PRODUCTION_NEEDS: dict[Process, tuple[str, ...]] = {
    "gateway": ("public_base_url", "jwt_secret"),
}


class Settings(BaseSettings):
    """Configuration from the environment (names are the upper-case paths unless aliased)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # WORKER_MAX_CALLS -> worker.max_calls: the group is the name's first word.
        env_nested_delimiter="_",
        env_nested_max_split=1,
    )

    env: Literal["development", "production"] = Field("development", validation_alias="WASSLA_ENV")
    database_url: str | None = None
    data_dir: Path = Field(Path(".wassla"), validation_alias="WASSLA_DATA_DIR")
    # The HTTP gateway
    host: str = "0.0.0.0"
    port: int = 8080
    # The gateway's Prometheus `GET /metrics`, on a port of its own: the public service
    # (PORT) never answers it; Fly scrapes this one over the private network. None: off.
    metrics_port: int | None = None
    public_base_url: str = "http://127.0.0.1:8080"
    # Channels API user tokens (Supabase-style HS256)
    jwt_secret: str | None = Field(None, validation_alias="WASSLA_JWT_SECRET")
    # Earlier messages a text-chat turn (SMS, TwiML loop) gives the model: one window for both.
    chat_history_messages: int = Field(20, ge=1, le=200)
    # Log lines (shared/logs.py): "auto" is plain text in a development terminal, else JSON.
    log_format: Literal["auto", "json", "text"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    db: DbSettings = DbSettings()
    twilio: TwilioSettings = TwilioSettings()
    sms: SmsSettings = SmsSettings()
    openai: OpenAISettings = OpenAISettings()
    livekit: LiveKitSettings = LiveKitSettings()
    worker: WorkerSettings = WorkerSettings()
    recordings: RecordingsSettings = RecordingsSettings()
    s3: S3Settings = S3Settings()
    voice: VoiceLoopSettings = VoiceLoopSettings()
    calls: CallFlowSettings = CallFlowSettings()
    dev: DevSettings = DevSettings()

    _no_trailing_slash = field_validator("public_base_url")(_strip_trailing_slash)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return value.lower() if value.lower() in ("auto", "json", "text") else value.upper()

    def value(self, path: str) -> object:
        """A setting by its dotted path (`"twilio.auth_token"`)."""
        group, _, name = path.partition(".")
        holder: object = getattr(self, group) if name else self
        return getattr(holder, name or group)

    @staticmethod
    def env_name(path: str) -> str:
        """The environment variable a dotted path is read from."""
        group, _, name = path.partition(".")
        field = Settings.model_fields[group]
        if not name and isinstance(field.validation_alias, str):
            return field.validation_alias
        return path.replace(".", "_").upper()

    def require(self, *paths: str) -> None:
        """Fail fast, naming the environment variables a command needs but lacks."""
        missing = [p for p in paths if not self.value(p)]
        if missing:
            raise MissingSetting([self.env_name(p) for p in missing])

    def check_process(self, process: Process) -> None:
        """Raise MissingSetting naming everything `process` needs in this environment."""
        needed = list(_PROCESS_NEEDS[process])
        if self.env == "production":
            needed += ["database_url", *_PRODUCTION_NEEDS.get(process, ())]
        self.require(*needed)
        if (
            self.env == "production"
            and process == "gateway"
            and not self.public_base_url.startswith("https://")
        ):
            raise MissingSetting(["PUBLIC_BASE_URL (the https URL Twilio calls)"])

    def changed(self, changes: Mapping[str, object]) -> Settings:
        """A copy with settings changed by dotted path (`{"worker.max_calls": 5}`)."""
        top: dict[str, object] = {}
        groups: dict[str, dict[str, object]] = {}
        for path, value in changes.items():
            group, _, name = path.partition(".")
            if group not in Settings.model_fields:
                raise KeyError(path)
            if name:
                if name not in type(getattr(self, group)).model_fields:
                    raise KeyError(path)
                groups.setdefault(group, {})[name] = value
            else:
                top[group] = value
        for group, fields in groups.items():
            top[group] = getattr(self, group).model_copy(update=fields)
        return self.model_copy(update=top)
