"""The gateway and the SMS sender as real child processes (so they can be SIGKILLed mid-burst).

One `ServiceProcess` for both: started with a deployed process's environment pointed at the
test's components, ready once its health check answers 200, its output kept in a log file.
"""

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
from tests.support.processes import REPO, free_port, log_tail, stop_process
from wassla.supervisor import dying_with_parent


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


def gateway_env(settings: Settings, port: int) -> dict[str, str]:
    """A deployed gateway's environment (replies queued for the senders: SMS_REPLIES=worker),
    pointed at the test's components and serving on loopback `port`."""
    env = sender_env(settings, health_port=0)
    del env["SMS_WORKER_HEALTH_PORT"]
    env.update({"HOST": "127.0.0.1", "PORT": str(port), "SMS_REPLIES": "worker"})
    if settings.jwt_secret:
        env["WASSLA_JWT_SECRET"] = settings.jwt_secret
    return env


@dataclass
class ServiceProcess:
    module: str
    process: subprocess.Popen[bytes]
    port: int  # the gateway's HTTP port, the sender's health port
    health_path: str
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_port(self) -> int:
        return self.port

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    async def wait_ready(self, within: float = 20.0) -> None:
        """Until its health check answers 200 (the gateway serving, the sender listening)."""

        async def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.module} exited:\n{self.log_tail()}")
            try:
                async with httpx.AsyncClient() as http:
                    url = self.base_url + self.health_path
                    return (await http.get(url, timeout=2)).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, within=within, what=f"{self.module} ready", interval=0.1)

    wait_listening = wait_ready

    def kill(self) -> None:
        """SIGKILL: no drain, no claim given back, requests in flight get no answer."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def _running(
    module: str, env: dict[str, str], port: int, health_path: str
) -> Iterator[ServiceProcess]:
    log_path = Path(tempfile.mkstemp(prefix=f"wassla-{module}-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            dying_with_parent([sys.executable, "-m", module]),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield ServiceProcess(module, process, port, health_path, log_path)
    finally:
        stop_process(process, grace=15)
        if os.environ.get("WASSLA_SHOW_SERVICE_LOGS"):
            print(log_path.read_text(errors="replace"))
        log_path.unlink(missing_ok=True)


@contextmanager
def running_sender(settings: Settings) -> Iterator[ServiceProcess]:
    port = free_port()
    with _running("sms_sender", sender_env(settings, port), port, "/") as sender:
        yield sender


@contextmanager
def running_gateway_process(settings: Settings) -> Iterator[ServiceProcess]:
    port = free_port()
    with _running("webhook_gateway", gateway_env(settings, port), port, "/healthz") as gateway:
        yield gateway
