import pytest

from shared.errors import MissingSetting
from shared.settings import Settings


def test_flat_environment_names_fill_their_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_MAX_CALLS", "12")
    monkeypatch.setenv("LIVEKIT_SIP_ALLOWED_ADDRESSES", "10.0.0.0/8, 192.0.2.1/32")
    monkeypatch.setenv("SMS_WORKER_HEALTH_PORT", "8082")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "3")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("WASSLA_JWT_SECRET", "s")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.worker.max_calls == 12
    assert settings.livekit.sip_allowed_addresses == ["10.0.0.0/8", "192.0.2.1/32"]
    assert settings.sms.worker_health_port == 8082
    assert settings.db.pool_max_size == 3
    assert settings.openai.base_url == "http://127.0.0.1:9/v1"
    assert settings.jwt_secret == "s"


def test_group_validation_names_the_setting() -> None:
    with pytest.raises(ValueError, match="worker.input_sample_rate"):
        Settings(_env_file=None, worker={"input_sample_rate": 22050})  # type: ignore[call-arg]


def test_streaming_transcription_is_on_by_default_and_a_realtime_only_model_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings(_env_file=None).openai.stt_streaming is True  # type: ignore[call-arg]
    monkeypatch.setenv("OPENAI_STT_STREAMING", "false")
    assert Settings(_env_file=None).openai.stt_streaming is False  # type: ignore[call-arg]
    monkeypatch.setenv("OPENAI_STT_MODEL", "gpt-live-transcribe")
    with pytest.raises(ValueError, match="OPENAI_STT_STREAMING=true"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_transcription_silence_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_STT_SILENCE_MS", "150")
    assert Settings(_env_file=None).openai.stt_silence_ms == 150  # type: ignore[call-arg]
    for bad in ("0", "50", "5000"):  # no silence would split every word; 5 s, no final
        monkeypatch.setenv("OPENAI_STT_SILENCE_MS", bad)
        with pytest.raises(ValueError, match="openai.stt_silence_ms"):
            Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("process", "env", "missing"),
    [
        ("gateway", {}, ["TWILIO_AUTH_TOKEN"]),
        ("sms_sender", {"twilio": {"auth_token": "t"}}, ["TWILIO_ACCOUNT_SID"]),
        ("worker", {}, ["LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]),
        ("cli", {"env": "production"}, ["DATABASE_URL"]),
        (
            "gateway",
            {"env": "production", "twilio": {"auth_token": "t"}},
            ["DATABASE_URL", "WASSLA_JWT_SECRET"],
        ),
    ],
)
def test_each_process_names_every_setting_it_lacks(
    process: str, env: dict[str, object], missing: list[str]
) -> None:
    settings = Settings(_env_file=None, **env)  # type: ignore[call-arg]
    with pytest.raises(MissingSetting) as err:
        settings.check_process(process)  # type: ignore[arg-type]
    assert err.value.names == missing


def test_production_gateway_needs_an_https_public_url() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, env="production", database_url="postgres://db", jwt_secret="s",
        twilio={"auth_token": "t"}, public_base_url="http://gw.example",
    )  # fmt: skip
    with pytest.raises(MissingSetting, match="https"):
        settings.check_process("gateway")
    settings.changed({"public_base_url": "https://gw.example"}).check_process("gateway")


def test_changed_copies_by_dotted_path_and_refuses_unknown_names() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    changed = settings.changed({"worker.max_calls": 3, "port": 9000})
    assert (changed.worker.max_calls, changed.port) == (3, 9000)
    assert (settings.worker.max_calls, settings.port) == (25, 8080)
    with pytest.raises(KeyError):
        settings.changed({"worker.no_such_knob": 1})
