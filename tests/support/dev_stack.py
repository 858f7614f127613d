"""`wassla dev` as a person runs it, on a fresh data directory and free loopback ports.

The whole stack (embedded Postgres, the Twilio sandbox, livekit-server, the gateway, the SMS
sender, the voice worker) comes from the product's own launcher; only the model is a stand-in
(OPENAI_BASE_URL), since the agent cannot think without one. Its output is read line by line
so a test can wait for the printed console link and read what it said.

    with DevStack.start(openai_base_url=standin.base_url) as stack:
        stack.link, stack.base_url, stack.sandbox_texts(), ...
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import REPO, free_port
from wassla.supervisor import dying_with_parent

LAUNCHER = "[wassla dev] "
READY_LINE = "Ctrl-C stops everything."
LINK = re.compile(r"https?://\S+")
# Settings a developer's shell may hold that would point the stack elsewhere.
_FOREIGN = ("DATABASE_URL", "LIVEKIT_", "TWILIO_", "OPENAI_", "WORKER_", "SMS_", "DEV_",
            "WASSLA_", "PUBLIC_BASE_URL", "PORT", "HOST", "LOG_", "METRICS_PORT")  # fmt: skip


@dataclass
class DevStack:
    process: subprocess.Popen[str]
    data_dir: Path
    port: int
    livekit_port: int
    worker_health_port: int
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def launcher_lines(self) -> list[str]:
        """What `wassla dev` itself said (not its children's log lines)."""
        return [line[len(LAUNCHER) :] for line in self.lines if line.startswith(LAUNCHER)]

    @property
    def link(self) -> str:
        links = [url for line in self.launcher_lines() for url in LINK.findall(line)]
        assert len(links) == 1, f"expected one link, got {links}"
        return str(links[0])

    def sandbox_texts(self) -> list[dict[str, Any]]:
        """The texts the Twilio sandbox recorded, latest state of each, oldest first."""
        store = self.data_dir / "twilio-sandbox" / "messages.jsonl"
        latest: dict[str, dict[str, Any]] = {}
        if store.exists():
            for line in store.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    latest[record["sid"]] = record
        return list(latest.values())

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if os.environ.get("WASSLA_SHOW_DEV_LOG"):
                print(line, end="")  # noqa: T201

    def wait_ready(self, within: float = 300.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if any(READY_LINE in line for line in self.launcher_lines()):
                return
            if self.process.poll() is not None:
                time.sleep(0.5)  # the reader's last lines
                raise RuntimeError(f"wassla dev exited with {self.process.returncode}:\n"
                                   + self.output[-6000:])  # fmt: skip
            time.sleep(0.2)
        raise RuntimeError(f"wassla dev not ready within {within} s:\n" + self.output[-6000:])

    def interrupt(self, within: float = 90.0) -> int:
        """Ctrl-C, as a person presses it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode

    @classmethod
    def launch(
        cls, *, openai_base_url: str | None, extra: dict[str, str] | None = None
    ) -> DevStack:
        data_dir = Path(tempfile.mkdtemp(prefix="wassla-dev-"))
        data_dir.chmod(0o755)  # Postgres runs as its own system user
        port, livekit_port, worker_port = free_port(), free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        env.update(
            {
                "WASSLA_DATA_DIR": str(data_dir),
                "PORT": str(port),
                "WORKER_HEALTH_PORT": str(worker_port),
                "DEV_LIVEKIT_PORT": str(livekit_port),
                "DEV_LIVEKIT_RTC_TCP_PORT": str(free_port()),
                "DEV_LIVEKIT_RTC_UDP_PORT": str(free_port(socket.SOCK_DGRAM)),
                "WORKER_NUM_IDLE_PROCESSES": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if openai_base_url is not None:
            env.update({"OPENAI_BASE_URL": openai_base_url, "OPENAI_API_KEY": "test-openai-key"})
        env.update(extra or {})
        process = subprocess.Popen(
            dying_with_parent([sys.executable, "-m", "wassla.cli", "dev"]),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stack = cls(process, data_dir, port, livekit_port, worker_port)
        stack._reader = threading.Thread(target=stack._read, daemon=True)
        stack._reader.start()
        return stack

    @classmethod
    @contextmanager
    def start(
        cls, *, openai_base_url: str | None, extra: dict[str, str] | None = None
    ) -> Iterator[DevStack]:
        """A ready stack, stopped (Ctrl-C) and its data directory removed afterwards."""
        stack = cls.launch(openai_base_url=openai_base_url, extra=extra)
        try:
            stack.wait_ready()
            yield stack
        finally:
            stack.interrupt()
            if os.environ.get("WASSLA_SHOW_DEV_LOG") is None:
                shutil.rmtree(stack.data_dir, ignore_errors=True)
