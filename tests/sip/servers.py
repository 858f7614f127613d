"""Redis and LiveKit's SIP bridge (`livekit-sip`) on loopback, for the SIP call tests.

Together with `tests.support.livekit_server.LiveKitServer.start(redis_host=...)` they make the
stack a phone call really takes: a SIP user agent -> livekit-sip -> Redis/psrpc ->
livekit-server -> room -> our worker. Every port is ephemeral; each server logs to a file for
failure messages.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.livekit_server import LiveKitServer
from tests.support.processes import REPO, free_port, stop_process, wait_for_log_line

SIP_BIN = REPO / ".cache" / "bin" / "livekit-sip"


def free_udp_range(size: int) -> tuple[int, int]:
    """A run of `size` consecutive UDP ports that are free on loopback right now."""
    for _ in range(50):
        start = free_port(socket.SOCK_DGRAM)
        if start + size > 65_000:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(start, start + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return start, start + size - 1
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {size} consecutive free UDP ports")


def skip_reason() -> str | None:
    """Why the SIP stack cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server not installed (scripts/build-livekit installs it)"
    if not SIP_BIN.is_file() and shutil.which("go") is None:
        return "livekit-sip not built and Go not installed (run scripts/build-livekit)"
    if shutil.which("sipp") is None:
        return "sipp not installed (scripts/test-deps installs Debian's sip-tester)"
    return None


@dataclass
class RedisServer:
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> RedisServer:
        last: Exception | None = None
        for _ in range(3):
            server = cls(port=free_port())
            log = server.workdir / "redis.log"
            server.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(server.port),
                 "--save", "", "--appendonly", "no", "--dir", str(server.workdir),
                 "--logfile", str(log)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                wait_for_log_line(
                    server.process,
                    log,
                    "Ready to accept connections",
                    timeout=15,
                    what="redis-server",
                )
                return server
            except RuntimeError as exc:
                last = exc
                server.stop()
        raise RuntimeError(f"redis-server did not start: {last}")

    def stop(self) -> None:
        stop_process(self.process, grace=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class SipBridge:
    """`livekit-sip` bound to loopback, signalling on `sip_port` (UDP and TCP)."""

    sip_port: int
    rtp_range: tuple[int, int]
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="livekit-sip-")))

    @property
    def log_path(self) -> Path:
        return self.workdir / "sip.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @staticmethod
    def config_yaml(livekit: LiveKitServer, redis: RedisServer, sip_port: int,
                    rtp_range: tuple[int, int]) -> str:  # fmt: skip
        # No health_port: livekit-sip binds it on every interface. max_cpu_utilization 1.0:
        # it refuses outbound calls (a warm hand-off's dial) as "cpu exhausted" above 90 % of
        # the machine's CPU, which a shared test box reaches while calls run.
        return (
            "\n".join(
                [
                    f"api_key: {livekit.api_key}",
                    f"api_secret: {livekit.api_secret}",
                    f"ws_url: {livekit.url}",
                    "redis:",
                    f"  address: {redis.address}",
                    f"sip_port: {sip_port}",
                    "listen_ip: 127.0.0.1",
                    f'rtp_port: "{rtp_range[0]}-{rtp_range[1]}"',
                    "use_external_ip: false",
                    "nat_1_to_1_ip: 127.0.0.1",
                    "max_cpu_utilization: 1.0",
                    "logging:",
                    "  level: debug",
                ]
            )
            + "\n"
        )

    @classmethod
    def start(cls, livekit: LiveKitServer, redis: RedisServer) -> SipBridge:
        if not SIP_BIN.is_file():
            subprocess.run([str(REPO / "scripts" / "build-livekit")], check=True)
        last: Exception | None = None
        for _ in range(3):
            bridge = cls(sip_port=free_port(socket.SOCK_DGRAM), rtp_range=free_udp_range(40))
            config = bridge.workdir / "sip.yaml"
            config.write_text(cls.config_yaml(livekit, redis, bridge.sip_port, bridge.rtp_range))
            with bridge.log_path.open("wb") as log:
                bridge.process = subprocess.Popen(
                    [str(SIP_BIN), "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=bridge.workdir,
                )
            try:
                wait_for_log_line(
                    bridge.process,
                    bridge.log_path,
                    "sip service ready",
                    timeout=30,
                    what="livekit-sip",
                )
                return bridge
            except RuntimeError as exc:
                last = exc
                bridge.stop()
        raise RuntimeError(f"livekit-sip did not start: {last}")

    def stop(self) -> None:
        stop_process(self.process, grace=5)
        shutil.rmtree(self.workdir, ignore_errors=True)
