"""A SIP caller: Debian's SIPp (`sip-tester`) running one scenario from tests/sip/scenarios/.

SIPp does the signalling (INVITE, ACK, BYE, and answering a REFER with 202 + NOTIFY); the
media goes to the test's `RtpPeer`, whose port the scenario's SDP offers. Every SIP message
SIPp sends or receives is traced to a file, so tests assert on the real wire messages.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.sip.servers import free_udp_range
from tests.support.processes import free_port

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


@dataclass
class SippCall:
    scenario: str
    sip_port: int  # the bridge's
    called: str
    caller: str
    rtp_port: int
    extra_header: str = "X-Wassla-Test: sipp"
    local_port: int = 0
    call_id: str = ""
    process: asyncio.subprocess.Process | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sipp-")))

    @property
    def trace_path(self) -> Path:
        return self.workdir / "messages.log"

    @property
    def screen_path(self) -> Path:
        return self.workdir / "screen.log"

    async def start(self) -> SippCall:
        self.local_port = free_port(socket.SOCK_DGRAM)
        # SIPp names each call `<cid_str>`; a known Call-ID lets the test address the call.
        self.call_id = f"wassla-{uuid.uuid4().hex[:12]}"
        keys = {
            "called": self.called,
            "caller": self.caller,
            "rtp_port": str(self.rtp_port),
            "extra_header": self.extra_header,
        }
        args = [
            "sipp", f"127.0.0.1:{self.sip_port}",
            "-sf", str(SCENARIOS / self.scenario),
            "-i", "127.0.0.1", "-p", str(self.local_port),
            # SIPp also binds its own (unused here) media ports and a control port; left to
            # their defaults (6000, 8888) parallel test runs would collide.
            "-mp", str(free_udp_range(4)[0]), "-cp", str(free_port(socket.SOCK_DGRAM)),
            "-m", "1", "-l", "1", "-nostdin", "-t", "u1",
            "-cid_str", self.call_id,
            "-trace_msg", "-message_file", str(self.trace_path),
            "-trace_err", "-error_file", str(self.workdir / "errors.log"),
            "-trace_screen", "-screen_file", str(self.screen_path),
            "-timeout", "120", "-timeout_error",
        ]  # fmt: skip
        for name, value in keys.items():
            args += ["-key", name, value]
        self.process = await asyncio.create_subprocess_exec(
            *args,
            cwd=self.workdir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        return self

    def messages(self) -> str:
        return self.trace_path.read_text(errors="replace") if self.trace_path.exists() else ""

    def wire(self) -> list[tuple[str, str]]:
        """Every SIP message of the call in order, as ("sent" | "received", message text)."""
        found: list[tuple[str, str]] = []
        for part in re.split(r"^-{20,}[^\n]*\n", self.messages(), flags=re.MULTILINE):
            head, _, body = part.partition("\n")
            match = re.match(r"\S+ message (sent|received)", head) or re.match(
                r"\S+ message (sent|received)", body
            )
            if match is None:
                continue
            if not head.startswith(match.group(0)):  # the first entry has a date line first
                body = body.partition("\n")[2]
            found.append((match.group(1), body.strip()))
        return found

    def received(self, method_or_status: str) -> list[str]:
        """Messages from the bridge whose first line starts with `method_or_status`."""
        return [m for d, m in self.wire() if d == "received" and m.startswith(method_or_status)]

    def sent(self, method_or_status: str) -> list[str]:
        return [m for d, m in self.wire() if d == "sent" and m.startswith(method_or_status)]

    def answered_media(self) -> tuple[str, int] | None:
        """Where the bridge wants our RTP (its SDP answer in the 200 OK), once answered."""
        for message in self.received("SIP/2.0 200"):
            if "INVITE" not in message.split("CSeq:", 1)[-1].split("\n", 1)[0]:
                continue
            host = re.search(r"^c=IN IP4 (\S+)", message, flags=re.MULTILINE)
            port = re.search(r"^m=audio (\d+)", message, flags=re.MULTILINE)
            if host and port:
                return host.group(1), int(port.group(1))
        return None

    async def press_hang_up(self) -> None:
        """Send SIPp the INFO its scenario waits for before it sends BYE."""
        message = (
            f"INFO sip:test@127.0.0.1:{self.local_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-{uuid.uuid4().hex}\r\n"
            "From: <sip:test@127.0.0.1>;tag=test-harness\r\n"
            f"To: <sip:caller@127.0.0.1:{self.local_port}>\r\n"
            f"Call-ID: {self.call_id}\r\n"
            "CSeq: 1 INFO\r\n"
            "Max-Forwards: 70\r\n"
            "X-Test-Action: hang-up\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(message.encode(), ("127.0.0.1", self.local_port))

    async def wait(self, within: float = 60.0) -> int:
        """SIPp's exit status: 0 when the scenario ran to its end."""
        assert self.process is not None
        await asyncio.wait_for(self.process.wait(), within)
        return self.process.returncode or 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def diagnostics(self) -> str:
        parts = []
        for path in (self.screen_path, self.workdir / "errors.log", self.trace_path):
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)
