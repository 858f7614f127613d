"""`python -m sms_sender` as a real child process (so it can be SIGKILLed mid-reply)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.settings import Settings
from tests.support.polling import eventually
from tests.support.processes import REPO, die_with_parent, free_port, log_tail, stop_process


def sender_env(settings: Settings, health_port: int) -> dict[str, str]:
    """The environment a deployed sender would have, pointed at the test's components."""
    assert settings.database_url and settings.twilio.account_sid and settings.twilio.auth_token
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SMS_", "TWILIO_", "OPENAI_", "DATABASE_", "WASSLA_"))
    }
    env.update(
        {
            "DATABASE_URL": settings.database_url,
            "WASSLA_DATA_DIR": str(settings.data_dir),
            "PUBLIC_BASE_URL": settings.public_base_url,
            "TWILIO_ACCOUNT_SID": settings.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": settings.twilio.auth_token,
            "TWILIO_API_BASE_URL": settings.twilio.api_base_url,
            "OPENAI_API_KEY": settings.openai.api_key or "",
            "OPENAI_BASE_URL": settings.openai.base_url,
            "OPENAI_TIMEOUT_SECONDS": str(settings.openai.timeout_seconds),
            "SMS_REPLIES": "worker",
            "SMS_WORKER_HEALTH_PORT": str(health_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


@dataclass
class SenderProcess:
    process: subprocess.Popen[bytes]
    health_port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    async def wait_listening(self, within: float = 20.0) -> None:
        """Until its health check answers 200 (listening for queued replies)."""

        async def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"sms_sender exited:\n{self.log_tail()}")
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(self.base_url + "/", timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, within=within, what="the SMS sender listening", interval=0.1)

    def kill(self) -> None:
        """SIGKILL: no drain, no claim given back."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def running_sender(settings: Settings) -> Iterator[SenderProcess]:
    health_port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="wassla-sms-sender-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sms_sender"],
            cwd=REPO,
            env=sender_env(settings, health_port),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        yield SenderProcess(process=process, health_port=health_port, log_path=log_path)
    finally:
        stop_process(process, grace=15)
        if os.environ.get("WASSLA_SHOW_SENDER_LOG"):
            print(log_path.read_text(errors="replace"))
        log_path.unlink(missing_ok=True)
