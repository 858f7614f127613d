"""`python -m worker start` as deployed, pointed at the test run's components: the one voice
worker of the worker tests and of the SIP tests, and the extra ones a test starts itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually
from tests.support.processes import (
    REPO,
    free_port,
    log_tail,
    stop_process,
    wait_for_log_line,
)
from wassla.supervisor import dying_with_parent

if TYPE_CHECKING:
    from shared.providers.recording_store import S3RecordingStore

AGENT_NAME = "wassla-voice-test"
RECORDINGS_BUCKET = "call-recordings"


def recordings_store(s3_endpoint: str, bucket: str = RECORDINGS_BUCKET) -> S3RecordingStore:
    """The worker's recordings bucket in moto's S3, as the worker's environment names it."""
    from shared.providers.recording_store import S3RecordingStore

    return S3RecordingStore(
        bucket=bucket,
        endpoint_url=s3_endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
    )


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
            "RECORDINGS_BUCKET": RECORDINGS_BUCKET,
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
            # A warm hand-off nobody answers gives up this soon (tests/sip/test_warm_handoff.py).
            "CALLS_WARM_RING_SECONDS": "6",
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
    metrics_port: int | None = None  # WORKER_METRICS_PORT, when the environment set one

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, event: str, **fields: str) -> list[dict[str, Any]]:
        """The worker's JSON log records of `event`, oldest first; with `fields`, only those
        carrying them (`call_sid=...`: one call's, as a worker serves many)."""
        found = []
        for line in self.log().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and record.get("event") == event
                and all(record.get(key) == value for key, value in fields.items())
            ):
                found.append(record)
        return found

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

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

        async def idle() -> bool:
            info = await asyncio.to_thread(self.worker_info)
            return not info.get("active_jobs", 0)

        await eventually(idle, within=within, what="the worker to hold no job")

    def wait_registered(self, timeout: float = 60.0) -> None:
        wait_for_log_line(
            self.process,
            self.log_path,
            "registered worker",
            timeout=timeout,
            what="worker",
            interval=0.1,
        )

    def stop(self, timeout: float = 30.0) -> int:
        returncode = stop_process(self.process, grace=timeout, kill_wait=10)
        assert returncode is not None
        return returncode


def start_worker(
    env: dict[str, str], health_port: int, *, new_session: bool = False
) -> WorkerProcess:
    """`python -m worker start` as deployed; `new_session` makes it killable as a group."""
    log_path = Path(tempfile.mkstemp(prefix="wassla-worker-", suffix=".log")[1])
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            dying_with_parent([sys.executable, "-m", "worker", "start", "--log-level", "INFO"]),
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    metrics_port = int(env["WORKER_METRICS_PORT"]) if env.get("WORKER_METRICS_PORT") else None
    worker = WorkerProcess(
        process=process, health_port=health_port, log_path=log_path, metrics_port=metrics_port
    )
    worker.wait_registered()
    return worker


@contextmanager
def running_worker(
    *,
    livekit: LiveKitServer,
    livekit_url: str | None = None,
    openai_base_url: str,
    pg_dsn: str,
    data_dir: Path,
    s3_endpoint: str,
) -> Iterator[WorkerProcess]:
    """The one worker of a test session (its log printed at the end with WASSLA_SHOW_WORKER_LOG)."""
    health_port = free_port()
    env = worker_env(
        livekit=livekit,
        livekit_url=livekit_url,
        openai_base_url=openai_base_url,
        pg_dsn=pg_dsn,
        data_dir=data_dir,
        s3_endpoint=s3_endpoint,
        health_port=health_port,
        extra={"WORKER_METRICS_PORT": str(free_port())},
    )
    process = start_worker(env, health_port)
    try:
        yield process
    finally:
        process.stop()
        if os.environ.get("WASSLA_SHOW_WORKER_LOG"):
            print(process.log())
