"""`python -m webhook_gateway` as a real child process (so it can be SIGKILLed mid-burst)."""

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
from tests.support.sms_sender_process import sender_env


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
class GatewayProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    async def wait_ready(self, within: float = 20.0) -> None:
        """Until `GET /healthz` answers 200."""

        async def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"webhook_gateway exited:\n{self.log_tail()}")
            try:
                async with httpx.AsyncClient() as http:
                    return (
                        await http.get(self.base_url + "/healthz", timeout=2)
                    ).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(healthy, within=within, what="the gateway serving", interval=0.1)

    def kill(self) -> None:
        """SIGKILL: requests in flight get no answer."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def running_gateway_process(settings: Settings) -> Iterator[GatewayProcess]:
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="wassla-gateway-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "webhook_gateway"],
            cwd=REPO,
            env=gateway_env(settings, port),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
    try:
        yield GatewayProcess(process=process, port=port, log_path=log_path)
    finally:
        stop_process(process, grace=15)
        if os.environ.get("WASSLA_SHOW_GATEWAY_LOG"):
            print(log_path.read_text(errors="replace"))
        log_path.unlink(missing_ok=True)
