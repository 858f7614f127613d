"""The worker's log (issue 13, defect 7): livekit-agents' lines, ours and its job processes'
(forwarded to the worker process) are all one JSON object a line, in the shape of every
other process's (shared/logs.py), with no configured secret."""

from __future__ import annotations

import asyncpg

from tests.standins.openai_api import OpenAIStandIn
from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually
from tests.support.worker_process import WorkerProcess
from tests.test_logs import json_lines
from tests.worker.conftest import CallFactory
from tests.worker.test_voice_calls import voice_line


async def test_worker_lines_are_json_with_the_frameworks_and_the_calls_fields(
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    calls: CallFactory,
    worker: WorkerProcess,
    livekit: LiveKitServer,
) -> None:
    await voice_line(pool)
    phone, call_sid = await calls.dial(called_number="+15550009999")  # no such number: refused
    await phone.wait_hung_up(within=30)

    def refused_logged() -> bool:
        return call_sid in worker.log()

    await eventually(refused_logged, within=20, what="the refused call in the worker's log")
    text = worker.log()
    lines = json_lines(text)
    assert {line["service"] for line in lines} == {"worker"}
    registered = [line for line in lines if line["event"] == "registered worker"]
    assert registered and registered[0]["logger"] == "livekit.agents"
    [refused] = [line for line in lines if line.get("call_sid") == call_sid]
    assert refused["event"] == "call.refused" and refused["logger"] == "worker"
    assert refused["reason"] and refused["pid"] != registered[0]["pid"]  # a job process's
    for secret in (livekit.api_secret, "test-openai-key"):
        assert secret not in text
