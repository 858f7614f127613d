"""The person a warm hand-off rings: SIPp as a user agent server on the outbound trunk's address.

The bridge's INVITE arrives at `address`; the scenario (tests/sip/scenarios/human_*.xml)
answers it or lets it ring. The media is a loopback `RtpPeer`, offered in the answer's SDP
and sent to the bridge's SDP offer, so the test hears what the person hears.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass, field

from tests.sip.rtp import RtpPeer
from tests.sip.servers import free_udp_range
from tests.sip.sipp import SCENARIOS, SippCall
from tests.support.processes import free_port


@dataclass
class SippColleague(SippCall):
    rtp: RtpPeer = field(default_factory=RtpPeer)
    _media: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """What the outbound trunk dials: this agent's host and port."""
        return f"127.0.0.1:{self.local_port}"

    async def start(self) -> SippColleague:
        await self.rtp.open()
        self.rtp_port = self.rtp.port
        self.local_port = free_port(socket.SOCK_DGRAM)
        args = [
            "sipp", "-sf", str(SCENARIOS / self.scenario),
            "-i", "127.0.0.1", "-p", str(self.local_port),
            "-mp", str(free_udp_range(4)[0]), "-cp", str(free_port(socket.SOCK_DGRAM)),
            "-m", "1", "-nostdin", "-t", "u1",
            "-trace_msg", "-message_file", str(self.trace_path),
            "-trace_err", "-error_file", str(self.workdir / "errors.log"),
            "-trace_screen", "-screen_file", str(self.screen_path),
            "-timeout", "150", "-timeout_error",
            "-key", "rtp_port", str(self.rtp_port),
        ]  # fmt: skip
        self.process = await asyncio.create_subprocess_exec(
            *args,
            cwd=self.workdir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._media = asyncio.create_task(self._follow_offer())
        return self

    def offered_media(self) -> tuple[str, int] | None:
        """Where the bridge wants the person's RTP (the SDP offer of its INVITE)."""
        for message in self.received("INVITE "):
            host = re.search(r"^c=IN IP4 (\S+)", message, flags=re.MULTILINE)
            port = re.search(r"^m=audio (\d+)", message, flags=re.MULTILINE)
            if host and port:
                return host.group(1), int(port.group(1))
        return None

    def answered(self) -> bool:
        return bool(self.sent("SIP/2.0 200 OK")) and "INVITE" in self.sent("SIP/2.0 200 OK")[0]

    async def _follow_offer(self) -> None:
        # A phone sends RTP once it answers; before that, the bridge gets nothing from us.
        while self.running:
            media = self.offered_media() if self.answered() else None
            if media is not None:
                self.rtp.remote = self.rtp.remote or media
                return
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._media is not None:
            self._media.cancel()
            await asyncio.gather(self._media, return_exceptions=True)
        await self.rtp.close()
        await super().stop()
