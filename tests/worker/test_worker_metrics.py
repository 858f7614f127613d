"""The worker's Prometheus metrics (WORKER_METRICS_PORT): calls run in job processes of their
own, and their figures reach the main process's scrape (prometheus-client multiprocess mode):
live calls, voice turn latencies, barge-ins and the call's charge."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.standins.openai_api import OpenAIStandIn
from tests.support.audio import espeak_pcm
from tests.support.calls import ended_call
from tests.support.metrics import Samples, scrape, value
from tests.support.polling import eventually
from tests.support.worker_process import WorkerProcess
from tests.worker.conftest import CallFactory
from tests.worker.test_voice_calls import OUR_NUMBER, voice_line


def turns(samples: Samples) -> float:
    """Turn-latency observations over every stage."""
    return sum(
        v for (name, _), v in samples.items() if name == "wassla_voice_turn_latency_seconds_count"
    )


async def test_a_call_moves_the_workers_counters_from_its_job_process(
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    calls: CallFactory,
    worker: WorkerProcess,
) -> None:
    openai_standin.reset()
    assert worker.metrics_port is not None
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    await voice_line(pool)
    long_reply = " ".join(["Our store is open every day from nine to five."] * 8)
    openai_standin.script_transcripts("Tell me about your store.", "Wait, stop please.")
    openai_standin.script_chat(long_reply, "Of course, go ahead.")
    before = await scrape(url)
    assert value(before, "wassla_live_calls") == 0

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    during = await scrape(url)
    assert value(during, "wassla_live_calls") == 1  # counted in the call's job process
    await phone.wait_agent_quiet(after=greeted_at)
    phone.say(espeak_pcm("Tell me about your store."))
    spoke_until = await phone.finish_saying()
    await phone.wait_agent_speaking(after=spoke_until, within=20)
    await asyncio.sleep(1.5)
    onset = phone.say(espeak_pcm("Wait, wait, stop please, I have a question."))
    await phone.wait_agent_quiet(after=onset, quiet=0.8, within=20)
    await phone.finish_saying()
    await phone.hang_up()
    await ended_call(pool, call_sid)

    async def settled() -> Samples | None:
        samples = await scrape(url)
        return samples if value(samples, "wassla_live_calls") == 0 else None

    after = await eventually(settled, within=20, what="the call no longer live")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("wassla_charges_recorded_total", kind="voice_minutes") == 1
    assert moved("wassla_voice_barge_ins_total") >= 1
    assert turns(after) - turns(before) >= 2
    assert moved("wassla_voice_turn_latency_seconds_count", stage="e2e_latency") >= 1
