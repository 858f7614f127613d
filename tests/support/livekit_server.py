"""A real `livekit-server --dev` on ephemeral loopback ports, for tests and bench scripts.

Reusable: `LiveKitServer.start()` gives `url`, `api_key`, `api_secret`; pass `redis_host`
to enable the SIP APIs (they need Redis). The binary is `.cache/bin/livekit-server` (built by
`scripts/build-livekit`) or `$LIVEKIT_SERVER_BIN`; `skip_reason()` says why tests must skip
when neither the binary nor Go exists.

    server = LiveKitServer.start()
    try:
        ... server.url, server.api_key, server.api_secret ...
    finally:
        server.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO, free_port, log_tail, stop_process
from wassla.supervisor import dying_with_parent

DEFAULT_BIN = REPO / ".cache" / "bin" / "livekit-server"
API_KEY = "devkey"
# --dev accepts short secrets, but the agents SDK signs HS256 tokens and recent PyJWT warns
# on keys under 32 bytes; a long one keeps the test run free of that warning.
API_SECRET = "wassla-test-secret-0123456789abcdef0123456789"


def binary_path() -> Path:
    return Path(os.environ.get("LIVEKIT_SERVER_BIN") or DEFAULT_BIN)


def skip_reason() -> str | None:
    """Why a test needing livekit-server cannot run here, or None when it can."""
    if binary_path().is_file():
        return None
    if shutil.which("go") is None:
        return "livekit-server not built and Go not installed (run scripts/build-livekit)"
    return None  # Go exists: ensure_binary() builds it


def ensure_binary() -> Path:
    """The binary, building it with scripts/build-livekit when Go is here but it is not."""
    path = binary_path()
    if path.is_file():
        return path
    subprocess.run([str(REPO / "scripts" / "build-livekit")], check=True)
    if not path.is_file():
        raise RuntimeError(f"scripts/build-livekit did not produce {path}")
    return path


@dataclass
class LiveKitServer:
    port: int
    tcp_port: int
    udp_port: int
    redis_host: str | None = None
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _workdir: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config_yaml(self) -> str:
        lines = [
            f"port: {self.port}",
            "bind_addresses: [127.0.0.1]",
            "rtc:",
            f"  tcp_port: {self.tcp_port}",
            f"  udp_port: {self.udp_port}",
            "  node_ip: 127.0.0.1",
            "  use_external_ip: false",
            "  enable_loopback_candidate: true",
            "turn:",
            "  enabled: false",
            "keys:",
            f"  {self.api_key}: {self.api_secret}",
            "logging:",
            "  level: info",
        ]
        if self.redis_host:
            lines += ["redis:", f"  address: {self.redis_host}"]
        return "\n".join(lines) + "\n"

    @classmethod
    def start(cls, *, redis_host: str | None = None, timeout: float = 30.0) -> LiveKitServer:
        """Start a server on fresh ports and wait until it answers HTTP."""
        binary = ensure_binary()
        last_error: Exception | None = None
        for _ in range(3):  # a port taken between free_port() and bind: try fresh ones
            server = cls(
                port=free_port(),
                tcp_port=free_port(),
                udp_port=free_port(socket.SOCK_DGRAM),
                redis_host=redis_host,
            )
            try:
                server._spawn(binary, timeout)
                return server
            except RuntimeError as exc:
                last_error = exc
                server.stop()
        raise RuntimeError(f"livekit-server did not start: {last_error}")

    def _spawn(self, binary: Path, timeout: float) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix="livekit-server-"))
        config = self._workdir / "livekit.yaml"
        config.write_text(self.config_yaml())
        self.log_path = self._workdir / "server.log"
        log = self.log_path.open("wb")
        try:
            self.process = subprocess.Popen(
                dying_with_parent([str(binary), "--dev", "--config", str(config)]),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.http_url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no answer within {timeout}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines) if self.log_path is not None else ""

    def stop(self) -> None:
        stop_process(self.process, grace=10)
        if self._workdir is not None and not os.environ.get("WASSLA_KEEP_LIVEKIT_LOG"):
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
