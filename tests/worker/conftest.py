"""Real components for the worker tests, each started once per run.

A `livekit-server --dev` on ephemeral ports, the OpenAI-compatible stand-in, moto's S3 and
the embedded Postgres (from tests/conftest.py), and ONE `python -m worker start` process
(tests/support/worker_process.py) pointed at all of them. Tests get a fresh room and a
SIP-kind test caller each.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from livekit import api

from tests.standins.openai_api import OpenAIStandIn
from tests.support.livekit_server import LiveKitServer, skip_reason
from tests.support.livekit_tap import LiveKitTap
from tests.support.worker_process import AGENT_NAME, WorkerProcess, running_worker
from tests.worker.phone import Phone, sip_token


@pytest.fixture(scope="session")
def livekit() -> Iterator[LiveKitServer]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    server = LiveKitServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def livekit_tap(livekit: LiveKitServer) -> Iterator[LiveKitTap]:
    """The worker's way to the server: transparent, except it answers SIP transfers."""
    tap = LiveKitTap(upstream_http=livekit.http_url).start()
    yield tap
    tap.stop()


@pytest.fixture(scope="session")
def openai_standin() -> Iterator[OpenAIStandIn]:
    standin = OpenAIStandIn().start()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def worker(
    livekit: LiveKitServer,
    livekit_tap: LiveKitTap,
    openai_standin: OpenAIStandIn,
    pg_dsn: str,
    _migrated: str,
    data_dir: Path,
    s3_endpoint: str,
    recordings_bucket: str,
) -> Iterator[WorkerProcess]:
    with running_worker(
        livekit=livekit,
        livekit_url=livekit_tap.url,
        openai_base_url=openai_standin.base_url,
        pg_dsn=pg_dsn,
        data_dir=data_dir,
        s3_endpoint=s3_endpoint,
    ) as process:
        yield process


@dataclass
class CallFactory:
    livekit: LiveKitServer
    phones: list[Phone]

    async def dial(
        self,
        *,
        called_number: str,
        caller_number: str = "+15550001111",
        call_sid: str | None = None,
        agent_name: str | None = AGENT_NAME,
    ) -> tuple[Phone, str]:
        """Join a fresh room as a SIP caller; returns the phone and the call sid."""
        call_sid = call_sid or "CA" + uuid.uuid4().hex
        room = f"call-{uuid.uuid4().hex[:12]}"
        token = sip_token(
            api_key=self.livekit.api_key,
            api_secret=self.livekit.api_secret,
            room=room,
            identity=f"sip_{caller_number}",
            caller_number=caller_number,
            called_number=called_number,
            call_sid=call_sid,
            agent_name=agent_name,
        )
        phone = Phone(url=self.livekit.url, token=token)
        await phone.dial()
        self.phones.append(phone)
        return phone, call_sid

    async def open_playground(self, *, agent_id: str | None) -> tuple[Phone, str]:
        """Join a fresh room as a browser (standard) participant, as the playground does."""
        room = f"playground-{uuid.uuid4().hex[:12]}"
        metadata = json.dumps({"agent_id": agent_id}) if agent_id else ""
        token = (
            api.AccessToken(self.livekit.api_key, self.livekit.api_secret)
            .with_identity("playground-user")
            .with_grants(api.VideoGrants(room_join=True, room=room))
            .with_room_config(
                api.RoomConfiguration(
                    agents=[api.RoomAgentDispatch(agent_name=AGENT_NAME, metadata=metadata)]
                )
            )
            .to_jwt()
        )
        phone = Phone(url=self.livekit.url, token=token)
        await phone.dial()
        self.phones.append(phone)
        return phone, room


@pytest.fixture
async def calls(livekit: LiveKitServer, worker: WorkerProcess) -> AsyncIterator[CallFactory]:
    factory = CallFactory(livekit=livekit, phones=[])
    yield factory
    for phone in factory.phones:
        await phone.hang_up()
    # The next test truncates the tables: let this call's last writes land first.
    await worker.wait_idle()
