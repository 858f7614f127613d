"""Real components for the worker tests, each started once per run.

A `livekit-server --dev` on ephemeral ports, the OpenAI-compatible stand-in, moto's S3 and
the embedded Postgres (from tests/conftest.py), and ONE `python -m worker start` process
pointed at all of them. Tests get a fresh room and a SIP-kind test caller each.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from livekit import api

from tests.livekit_server import REPO, LiveKitServer, die_with_parent, free_port, skip_reason
from tests.livekit_tap import LiveKitTap
from tests.standins.openai_api import OpenAIStandIn
from tests.worker.phone import Phone, sip_token

AGENT_NAME = "wassla-voice-test"
BUCKET = "call-recordings"


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
async def recordings_bucket(s3_endpoint: str) -> str:
    from shared.providers.recording_store import S3RecordingStore

    store = S3RecordingStore(
        bucket=BUCKET,
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )
    await store.ensure_bucket()
    return BUCKET


def worker_env(
    *,
    livekit: LiveKitServer,
    livekit_url: str | None = None,
    openai_base_url: str,
    pg_dsn: str,
    data_dir: Path,
    s3_endpoint: str,
    health_port: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment a deployed worker would have, pointed at the test's components."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "WORKER_"))}
    env.update(
        {
            "LIVEKIT_URL": livekit_url or livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": livekit.api_secret,
            "DATABASE_URL": pg_dsn,
            "WASSLA_DATA_DIR": str(data_dir),
            "OPENAI_BASE_URL": openai_base_url,
            "OPENAI_API_KEY": "test-openai-key",
            "RECORDINGS_BACKEND": "s3",
            "RECORDINGS_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": s3_endpoint,
            "S3_ACCESS_KEY_ID": "testing",
            "S3_SECRET_ACCESS_KEY": "testing",
            "WORKER_AGENT_NAME": AGENT_NAME,
            "WORKER_HEALTH_PORT": str(health_port),
            "WORKER_NUM_IDLE_PROCESSES": "2",
            "WORKER_HEARTBEAT_SECONDS": "1",
            # The tests of the sweeper call it directly; the worker's own sweep runs at start.
            "WORKER_SWEEP_INTERVAL_SECONDS": "3600",
            "WORKER_MAX_CALL_WARNING_SECONDS": "4",
            "WORKER_ENDPOINTING_MIN_DELAY": "0.3",
            "WORKER_MAX_CALLS": "10",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    health_port: int
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def health(self) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def worker_info(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.health_port}/worker"
        with urllib.request.urlopen(url, timeout=2) as r:
            info: dict[str, Any] = json.loads(r.read())
            return info

    async def wait_idle(self, within: float = 30.0) -> None:
        """Until the worker holds no job (its on_session_end writes are done)."""
        deadline = time.monotonic() + within
        while (await asyncio.to_thread(self.worker_info)).get("active_jobs", 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker still busy after {within}s")
            await asyncio.sleep(0.1)

    def wait_registered(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited {self.process.returncode}:\n{self.log_tail()}")
            if "registered worker" in self.log():
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker did not register within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def start_worker(
    env: dict[str, str], health_port: int, *, new_session: bool = False
) -> WorkerProcess:
    """`python -m worker start` as deployed; `new_session` makes it killable as a group."""
    log_path = Path(tempfile.mkstemp(prefix="wassla-worker-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "start", "--log-level", "INFO"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=new_session,
        )
    worker = WorkerProcess(process=process, health_port=health_port, log_path=log_path)
    worker.wait_registered()
    return worker


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
    health_port = free_port()
    env = worker_env(
        livekit=livekit,
        livekit_url=livekit_tap.url,
        openai_base_url=openai_standin.base_url,
        pg_dsn=pg_dsn,
        data_dir=data_dir,
        s3_endpoint=s3_endpoint,
        health_port=health_port,
    )
    process = start_worker(env, health_port)
    yield process
    process.stop()
    if os.environ.get("WASSLA_SHOW_WORKER_LOG"):
        print(process.log())


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
