"""Log lines an operator can use (issue 13, defect 7): one JSON object a line with every
`extra=` field, readable text in a development terminal, no configured secret anywhere."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.logs import (
    REDACTED,
    JsonLineFormatter,
    TextLineFormatter,
    chosen_format,
    configure_logging,
    secrets_of,
)
from shared.settings import Settings
from tests.conftest import PUBLIC_BASE_URL, TWILIO_TEST_TOKEN
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.polling import eventually
from tests.support.processes import (
    REPO,
    free_port,
    stop_process,
    wait_for_log_line,
)
from tests.support.service_processes import running_sender
from tests.support.sms import inbound_params, message_sid, sms_setup
from tests.support.twilio_signing import sign
from wassla.supervisor import dying_with_parent

# Secrets as a deployment configures them; none may reach a log line.
SECRETS = {
    "TWILIO_AUTH_TOKEN": TWILIO_TEST_TOKEN,  # the Twilio stand-in's: replies really send
    "WASSLA_JWT_SECRET": "jwt-secret-for-the-log-test-0123456789abcdef",
    "OPENAI_API_KEY": "sk-log-test-openai-key-0123456789",
    "LIVEKIT_API_SECRET": "livekit-secret-for-the-log-test-0123456789",
    "S3_SECRET_ACCESS_KEY": "s3-secret-for-the-log-test-0123456789",
}
LINE_FIELDS = {"timestamp", "level", "logger", "event", "service", "pid"}


def record(
    msg: str,
    *,
    exc_info: Any = None,
    name: str = "shared.sms",
    args: tuple[object, ...] = (),
    **extra: object,
) -> logging.LogRecord:
    rec = logging.getLogger(name).makeRecord(
        name, logging.WARNING, __file__, 1, msg, args, exc_info, extra=extra
    )
    return rec


def test_a_record_is_one_json_object_with_every_extra_field() -> None:
    formatter = JsonLineFormatter("sms_sender")
    line = formatter.format(
        record(
            "sms.reply_outcome_unknown",
            reply_id=42,
            message_sid="SM" + "a" * 32,
            workspace_id="3f1c",
            conversation_id="9e2d",
            error="connection dropped after the request",
        )
    )
    assert "\n" not in line
    fields = json.loads(line)
    assert fields["event"] == "sms.reply_outcome_unknown"
    assert (fields["level"], fields["logger"], fields["service"]) == (
        "WARNING",
        "shared.sms",
        "sms_sender",
    )
    assert fields["timestamp"].endswith("Z") and "T" in fields["timestamp"]
    assert fields["reply_id"] == 42
    assert fields["message_sid"] == "SM" + "a" * 32
    assert (fields["workspace_id"], fields["conversation_id"]) == ("3f1c", "9e2d")
    assert fields["error"] == "connection dropped after the request"


def test_an_exception_gives_its_type_message_and_traceback() -> None:
    try:
        raise ValueError("bad CallDuration")
    except ValueError:
        exc_info = sys.exc_info()
    fields = json.loads(
        JsonLineFormatter("gateway").format(
            record("voice.status_failed", exc_info=exc_info, call_sid="CA1")
        )
    )
    assert fields["call_sid"] == "CA1"
    assert (fields["error_type"], fields["error"]) == ("ValueError", "bad CallDuration")
    assert fields["traceback"].startswith("Traceback (most recent call last):")
    assert "raise ValueError" in fields["traceback"]


def test_a_record_from_a_job_process_keeps_its_event_and_error_apart() -> None:
    # livekit-agents forwards a job process's record with the traceback in the message.
    tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\nKeyError: 'lang'"
    rec = record("call.failed\n" + tb, name="worker.call", call_sid="CA2")
    rec.exc_text = tb
    fields = json.loads(JsonLineFormatter("worker").format(rec))
    assert fields["event"] == "call.failed"
    assert (fields["error_type"], fields["error"]) == ("KeyError", "'lang'")
    assert fields["traceback"] == tb


def test_text_lines_keep_the_fields_as_key_value() -> None:
    line = TextLineFormatter("gateway").format(
        record("sms.received", message_sid="SM1", workspace_id="ws 1", outcome="stored")
    )
    assert "WARNING" in line and "shared.sms sms.received" in line
    assert 'message_sid=SM1 workspace_id="ws 1" outcome=stored' in line


def test_no_configured_secret_survives_in_any_field_or_traceback(settings: Settings) -> None:
    configured = settings.changed(
        {"jwt_secret": 'jwt"with\\quotes-0123456789', "livekit.api_secret": "lk-secret-0123456789"}
    )
    secrets = secrets_of(configured)
    assert TWILIO_TEST_TOKEN in secrets and "lk-secret-0123456789" in secrets
    try:
        raise RuntimeError(f"auth failed with {TWILIO_TEST_TOKEN}")
    except RuntimeError:
        exc_info = sys.exc_info()
    rec = record(
        "x",
        exc_info=exc_info,
        url="wss://lk?secret=lk-secret-0123456789",
        jwt=configured.jwt_secret,
    )
    for formatter in (JsonLineFormatter("g", secrets), TextLineFormatter("g", secrets)):
        line = formatter.format(rec)
        assert REDACTED in line
        for secret in secrets:
            assert secret not in line
    json.loads(JsonLineFormatter("g", secrets).format(rec))  # still well-formed


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        (
            "/recordings/a.ogg?expires=9&signature=abc123",
            f"/recordings/a.ogg?expires=9&signature={REDACTED}",
        ),
        # the console's sign-in link carries a bearer token (wassla console-link)
        ("/console/login?token=eyJabc123.x.y", f"/console/login?token={REDACTED}"),
    ],
)  # fmt: skip
def test_credentials_in_a_logged_url_are_redacted(path: str, logged: str) -> None:
    access = record(
        '%s - "%s %s HTTP/%s" %d',
        name="uvicorn.access",
        args=("127.0.0.1:1", "GET", path, "1.1", 200),
    )
    fields = json.loads(JsonLineFormatter("gateway").format(access))
    assert fields["path"] == logged
    assert "abc123" not in fields["event"] and fields["status"] == 200


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_only_in_a_development_terminal_unless_overridden(settings: Settings) -> None:
    dev, prod = settings.changed({"env": "development"}), settings.changed({"env": "production"})
    assert chosen_format(dev, _Tty()) == "text"
    assert chosen_format(dev, io.StringIO()) == "json"  # piped: a collector reads it
    assert chosen_format(prod, _Tty()) == "json"
    assert chosen_format(prod.changed({"log_format": "text"}), io.StringIO()) == "text"
    assert chosen_format(dev.changed({"log_format": "json"}), _Tty()) == "json"


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_replaces_the_console_handlers_it_finds(
    settings: Settings, root_logging: logging.Logger
) -> None:
    stale = logging.StreamHandler(sys.stderr)
    root_logging.addHandler(stale)
    out = io.StringIO()
    configure_logging(settings.changed({"log_level": "DEBUG"}), "gateway", stream=out)
    configure_logging(settings.changed({"log_level": "DEBUG"}), "gateway", stream=out)
    assert stale not in root_logging.handlers
    logging.getLogger("webhook_gateway.test").debug("debug.shown", extra={"call_sid": "CA3"})
    [line] = out.getvalue().splitlines()
    assert json.loads(line)["call_sid"] == "CA3"
    assert root_logging.level == logging.DEBUG


def test_log_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "TEXT")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    loaded = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (loaded.log_format, loaded.log_level) == ("text", "DEBUG")


# --- the processes, as deployed ------------------------------------------------------------


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of a process's output, each of which must be one JSON log object."""
    lines = []
    for raw in text.splitlines():
        try:
            fields = json.loads(raw)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {raw!r}\n{text[-3000:]}")
        assert isinstance(fields, dict) and LINE_FIELDS <= fields.keys(), raw
        lines.append(fields)
    return lines


def assert_no_secret(text: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"{name} is in the log"


def gateway_env(
    pg_dsn: str, port: int, openai: OpenAIStandIn, twilio: TwilioStandIn
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMS_", "TWILIO_", "OPENAI_", "DATABASE_", "WASSLA_", "LOG_", "S3_"))
        and not k.startswith("LIVEKIT_")
    }
    env.update(SECRETS)
    env.update(
        {
            "DATABASE_URL": pg_dsn,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "TWILIO_ACCOUNT_SID": twilio.account_sid,
            "TWILIO_API_BASE_URL": twilio.base_url,
            "OPENAI_BASE_URL": openai.base_url,
            "OPENAI_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_gateway(env: dict[str, str], stderr: Path, stdout: Path) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as err, stdout.open("wb") as out:
        return subprocess.Popen(
            dying_with_parent([sys.executable, "-m", "webhook_gateway"]),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=err,
        )


async def form_post(
    http: httpx.AsyncClient, path: str, params: dict[str, str], signature: str | None
) -> int:
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return (await http.post(path, data=params, headers=headers)).status_code


async def test_the_gateway_logs_json_lines_with_every_field_and_no_secret(
    pool: asyncpg.Pool,
    pg_dsn: str,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
    tmp_path: Path,
) -> None:
    setup = await sms_setup(pool)
    openai_standin.script_chat(ChatScript("", status=400))  # the first reply fails for good
    port = free_port()
    stderr_path, stdout_path = tmp_path / "stderr.log", tmp_path / "stdout.log"
    env = gateway_env(pg_dsn, port, openai_standin, twilio_standin)
    process = start_gateway(env, stderr_path, stdout_path)
    failed_sid, sent_sid = message_sid(), message_sid()
    try:
        wait_for_log_line(
            process, stderr_path, "Application startup complete", timeout=60, what="gateway"
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for sid in (failed_sid, sent_sid):
                params = inbound_params("hello", sid=sid)
                signature = sign(PUBLIC_BASE_URL + "/twilio-sms", params)
                assert await form_post(http, "/twilio-sms", params, signature) == 200
            unsigned = inbound_params("no signature")
            assert await form_post(http, "/twilio-sms", unsigned, None) == 403
            forged = inbound_params("forged")
            assert await form_post(http, "/twilio-sms", forged, "bm90IGEgc2lnbmF0dXJl") == 403
            bearer = {"Authorization": f"Bearer {SECRETS['WASSLA_JWT_SECRET']}"}
            channels = f"/api/workspaces/{setup.workspace.id}/channels"
            assert (await http.get(channels, headers=bearer)).status_code == 401
            assert (await http.get("/healthz")).status_code == 200

        async def replies_done() -> bool:
            done = await pool.fetchval(
                "select count(*) from sms_replies where status in ('sent', 'failed')"
            )
            return bool(done == 2)

        await eventually(replies_done, within=30, what="both replies finished")
        await asyncio.sleep(0.5)  # the last lines written
    finally:
        stop_process(process, grace=20)
    stderr, stdout = stderr_path.read_text(), stdout_path.read_text()
    assert_no_secret(stderr + stdout)
    assert stdout.strip() == ""
    lines = json_lines(stderr)
    assert {line["service"] for line in lines} == {"gateway"}
    events = {line["event"]: line for line in lines}

    received = [line for line in lines if line["event"] == "sms.received"]
    assert {line["message_sid"] for line in received} == {failed_sid, sent_sid}
    assert all(line["workspace_id"] == str(setup.workspace.id) for line in received)
    assert all(line["conversation_id"] for line in received)

    sent = events["sms.reply_sent"]
    assert sent["reply_id"] and sent["workspace_id"] == str(setup.workspace.id)
    failed = events["sms.reply_model_failed"]
    assert failed["reply_id"] and failed["error"]

    # uvicorn's own lines, in the same shape: the access log with its request fields.
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {(a["method"], a["path"], a["status"]) for a in access} >= {
        ("POST", "/twilio-sms", 200),
        ("POST", "/twilio-sms", 403),
        ("GET", "/healthz", 200),
    }
    assert any(line["logger"] == "uvicorn.error" for line in lines)


async def test_the_sms_sender_logs_json_lines(pool: asyncpg.Pool, settings: Settings) -> None:
    with running_sender(settings) as sender:
        await sender.wait_listening()
        stop_process(sender.process, grace=15)
        text = sender.log_path.read_text()
    lines = json_lines(text)
    assert {line["service"] for line in lines} == {"sms_sender"}
    [started] = [line for line in lines if line["event"] == "sms_worker.started"]
    assert started["health_port"] == sender.health_port and started["logger"] == "sms_sender"
    assert any(line["event"] == "sms_worker.stopped" for line in lines)
    for secret in secrets_of(settings):
        assert secret not in text


def test_a_process_that_cannot_start_says_why_in_one_json_line(pg_dsn: str) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWILIO_", "LIVEKIT_", "WASSLA_", "LOG_"))
    }
    env["DATABASE_URL"] = pg_dsn
    for command, event, missing in (
        (["webhook_gateway"], "gateway.cannot_start", "TWILIO_AUTH_TOKEN"),
        (["sms_sender"], "sms_worker.cannot_start", "TWILIO_AUTH_TOKEN"),
        (["worker", "start"], "worker.cannot_start", "LIVEKIT_URL"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", *command], cwd=REPO, env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        [line] = json_lines(result.stderr + result.stdout)
        assert line["event"] == event and missing in line["error"], line
        assert line["level"] == "ERROR"
