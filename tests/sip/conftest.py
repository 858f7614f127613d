"""The stack a real phone call takes, started once per test run.

Redis, `livekit-server` using it, LiveKit's SIP bridge `livekit-sip`, and ONE
`python -m worker start` process (the deployed command) pointed at them, at the embedded
Postgres, moto's S3 and the OpenAI-compatible stand-in. Callers are SIPp processes
(tests/sip/sipp.py) with a loopback RTP endpoint (tests/sip/rtp.py); each test makes its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.sip import servers
from tests.sip.rtp import RtpPeer
from tests.sip.servers import RedisServer, SipBridge
from tests.sip.sipp import SippCall
from tests.standins.openai_api import OpenAIStandIn
from tests.support import livekit_server
from tests.support.livekit_server import LiveKitServer
from tests.support.worker_process import AGENT_NAME, WorkerProcess, running_worker

ALLOWED_ADDRESSES = "127.0.0.0/8"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    reason = livekit_server.skip_reason() or servers.skip_reason()
    if reason:
        pytest.skip(reason)
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sip_livekit(redis_server: RedisServer) -> Iterator[LiveKitServer]:
    """livekit-server with Redis: the SIP APIs and the bridge need it."""
    server = LiveKitServer.start(redis_host=redis_server.address)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sip_bridge(sip_livekit: LiveKitServer, redis_server: RedisServer) -> Iterator[SipBridge]:
    bridge = SipBridge.start(sip_livekit, redis_server)
    yield bridge
    bridge.stop()
    if os.environ.get("WASSLA_SHOW_SIP_LOG"):
        print(bridge.log())


@pytest.fixture(scope="session")
def sip_worker(
    sip_livekit: LiveKitServer,
    sip_bridge: SipBridge,
    _openai_standin: OpenAIStandIn,
    pg_dsn: str,
    _migrated: str,
    data_dir: Path,
    s3_endpoint: str,
    recordings_bucket: str,
) -> Iterator[WorkerProcess]:
    with running_worker(
        livekit=sip_livekit,
        openai_base_url=_openai_standin.base_url,
        pg_dsn=pg_dsn,
        data_dir=data_dir,
        s3_endpoint=s3_endpoint,
    ) as process:
        yield process


def livekit_env(server: LiveKitServer) -> dict[str, str]:
    """What an operator exports to point `wassla livekit setup` at a LiveKit server."""
    return {
        "LIVEKIT_URL": server.url,
        "LIVEKIT_API_KEY": server.api_key,
        "LIVEKIT_API_SECRET": server.api_secret,
        "LIVEKIT_SIP_ALLOWED_ADDRESSES": ALLOWED_ADDRESSES,
        "WORKER_AGENT_NAME": AGENT_NAME,
    }


@pytest.fixture
def sip_settings(settings: Settings, sip_livekit: LiveKitServer) -> Settings:
    """Test settings pointed at the SIP-enabled LiveKit server (as `livekit_env` does)."""
    return settings.changed(
        {
            "livekit.url": sip_livekit.url,
            "livekit.api_key": sip_livekit.api_key,
            "livekit.api_secret": sip_livekit.api_secret,
            "livekit.sip_allowed_addresses": [ALLOWED_ADDRESSES],
            "worker.agent_name": AGENT_NAME,
        }
    )


class Caller:
    """One phone: a SIPp user agent and its RTP endpoint; hung up at the end of the test."""

    def __init__(self, bridge: SipBridge, worker: WorkerProcess) -> None:
        self.bridge = bridge
        self.worker = worker
        self.calls: list[tuple[SippCall, RtpPeer]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def dial(
        self,
        called: str,
        *,
        caller: str = "+15550001111",
        scenario: str = "call.xml",
        extra_header: str | None = None,
    ) -> tuple[SippCall, RtpPeer]:
        rtp = await RtpPeer().open()
        call = SippCall(
            scenario=scenario,
            sip_port=self.bridge.sip_port,
            called=called,
            caller=caller,
            rtp_port=rtp.port,
            **({"extra_header": extra_header} if extra_header else {}),
        )
        self.calls.append((call, rtp))
        await call.start()
        self._tasks.add(asyncio.create_task(self._follow_answer(call, rtp)))
        return call, rtp

    @staticmethod
    async def _follow_answer(call: SippCall, rtp: RtpPeer) -> None:
        """Send RTP to the bridge's SDP answer from the moment the call is answered."""
        # As a phone does: the bridge drops a call that stays silent past its media timeout.
        while rtp.remote is None and call.running:
            media = call.answered_media()
            if media is not None:
                rtp.remote = rtp.remote or media
                return
            await asyncio.sleep(0.05)

    def diagnostics(self) -> str:
        """What each party saw, for a failure message."""
        parts = []
        for call, rtp in self.calls:
            parts.append(
                f"--- RTP: {rtp.packets_received} packets in, {rtp.packets_sent} out,"
                f" remote {rtp.remote}\n{call.diagnostics()}"
            )
        parts.append("--- livekit-sip\n" + "\n".join(self.bridge.log().splitlines()[-60:]))
        parts.append("--- worker\n" + self.worker.log_tail(60))
        return "\n".join(parts)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for call, rtp in self.calls:
            await call.stop()
            await rtp.close()


@pytest.fixture
async def phone(sip_bridge: SipBridge, sip_worker: WorkerProcess) -> AsyncIterator[Caller]:
    caller = Caller(sip_bridge, sip_worker)
    yield caller
    await caller.close()
