"""The local livekit-server `wassla dev` runs when LIVEKIT_URL is unset.

The binary is the one `scripts/build-livekit` builds for the tests (pinned, cached outside the
checkout and linked as `.cache/bin`); a first `wassla dev` builds it. The server runs in dev
mode on loopback with a key pair of our own, which `wassla dev` hands the gateway (browser
tokens) and the worker through their LIVEKIT_* settings.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from shared.settings import DevSettings

REPO = Path(__file__).resolve().parents[1]
BINARY = REPO / ".cache" / "bin" / "livekit-server"
BUILD_SCRIPT = REPO / "scripts" / "build-livekit"
API_KEY = "devkey"
# At least 32 bytes: livekit-api signs HS256 tokens, and PyJWT warns on shorter keys.
API_SECRET = "wassla-dev-livekit-secret-0123456789abcdef"


@dataclass(frozen=True)
class LocalLiveKit:
    port: int
    rtc_tcp_port: int
    rtc_udp_port: int
    api_key: str = API_KEY
    api_secret: str = API_SECRET

    @classmethod
    def from_settings(cls, dev: DevSettings) -> LocalLiveKit:
        return cls(dev.livekit_port, dev.livekit_rtc_tcp_port, dev.livekit_rtc_udp_port)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def config_yaml(self) -> str:
        """Loopback only, no TURN, ICE over the two fixed ports (a browser on this machine)."""
        return "\n".join(
            [
                f"port: {self.port}",
                "bind_addresses: [127.0.0.1]",
                "rtc:",
                f"  tcp_port: {self.rtc_tcp_port}",
                f"  udp_port: {self.rtc_udp_port}",
                "  node_ip: 127.0.0.1",
                "  use_external_ip: false",
                "  enable_loopback_candidate: true",
                "turn:",
                "  enabled: false",
                "keys:",
                f"  {self.api_key}: {self.api_secret}",
                "logging:",
                "  level: info",
                "",
            ]
        )

    def write_config(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "livekit.yaml"
        path.write_text(self.config_yaml())
        path.chmod(0o600)  # it holds the API secret
        return path

    def argv(self, binary: Path, config: Path) -> list[str]:
        return [str(binary), "--dev", "--config", str(config)]


async def ensure_binary() -> Path | None:
    """The livekit-server binary, built by scripts/build-livekit when missing (its output on
    the terminal); None when it could not be built (no Go toolchain, a failed build)."""
    if BINARY.is_file():
        return BINARY
    if not BUILD_SCRIPT.is_file():
        return None
    build = await asyncio.create_subprocess_exec(str(BUILD_SCRIPT), cwd=REPO)
    await build.wait()
    return BINARY if build.returncode == 0 and BINARY.is_file() else None
