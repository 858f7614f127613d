"""SIP bridge bench: what a real SIP leg (SIPp -> livekit-sip -> room) adds to a call.

One stack as in tests/sip: Redis, livekit-server, livekit-sip, one `python -m worker start`,
embedded Postgres, the OpenAI stand-in (fixed latencies). Calls alternate between
  sip    : SIPp INVITE + μ-law RTP through livekit-sip (the phone path), and
  direct : a SIP-kind LiveKit participant joining the room itself (tests/worker/phone.py),
           the baseline measured in the same run against the same server and worker.

    .venv/bin/python bench/sip_call.py [--calls 5]

Figures (caller's side, p50 and max over the calls):
  answer -> greeting : dialling (SIPp start / room connect) -> first loud agent audio;
                       includes dispatch, agent start-up and the greeting's TTS.
  turn               : caller's end of speech -> first loud agent audio of the reply.
and the ratio sip / direct of each p50.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import migrate  # noqa: E402
from shared.devdb import start_embedded  # noqa: E402
from shared.providers.livekit_sip import sync_inbound_sip  # noqa: E402
from shared.settings import Settings  # noqa: E402
from tests.sip.rtp import RtpPeer  # noqa: E402
from tests.sip.servers import RedisServer, SipBridge  # noqa: E402
from tests.sip.sipp import SippCall  # noqa: E402
from tests.standins.openai_api import OpenAIStandIn  # noqa: E402
from tests.support import factories  # noqa: E402
from tests.support.audio import espeak_pcm  # noqa: E402
from tests.support.livekit_server import LiveKitServer  # noqa: E402
from tests.support.processes import free_port  # noqa: E402
from tests.support.worker_process import start_worker, worker_env  # noqa: E402
from tests.worker.phone import Phone, sip_token  # noqa: E402

NUMBER = "+15557654321"
CALLER = "+15550001111"
AGENT = "wassla-voice-test"  # worker_env()'s agent name
UTTERANCE = "What are your opening hours please?"


async def sip_call(bridge: SipBridge, speech_8k: bytes) -> tuple[float, float]:
    rtp = await RtpPeer().open()
    call = SippCall(
        scenario="call.xml", sip_port=bridge.sip_port, called=NUMBER, caller=CALLER,
        rtp_port=rtp.port,
    )  # fmt: skip
    try:
        dialled = time.monotonic()
        await call.start()
        greeted = await rtp.wait_agent_speaking(after=0.0, within=60)
        await rtp.wait_agent_quiet(after=greeted)
        rtp.say(speech_8k)
        spoke_until = await rtp.finish_saying()
        replied = await rtp.wait_agent_speaking(after=spoke_until, within=30)
        await rtp.wait_agent_quiet(after=replied)
        await call.press_hang_up()
        if await call.wait(within=30) != 0:
            raise RuntimeError(call.diagnostics())
        return greeted - dialled, replied - spoke_until
    finally:
        await call.stop()
        await rtp.close()


async def direct_call(livekit: LiveKitServer, speech_48k: bytes) -> tuple[float, float]:
    token = sip_token(
        api_key=livekit.api_key, api_secret=livekit.api_secret,
        room=f"call-direct-{uuid.uuid4().hex[:8]}", identity=f"sip_{CALLER}",
        caller_number=CALLER, called_number=NUMBER, call_sid="CA" + uuid.uuid4().hex,
        agent_name=AGENT,
    )  # fmt: skip
    phone = Phone(url=livekit.url, token=token)
    try:
        dialled = time.monotonic()
        await phone.dial()
        greeted = await phone.wait_agent_speaking(after=0.0, within=60)
        await phone.wait_agent_quiet(after=greeted)
        phone.say(speech_48k)
        spoke_until = await phone.finish_saying()
        replied = await phone.wait_agent_speaking(after=spoke_until, within=30)
        await phone.wait_agent_quiet(after=replied)
        return greeted - dialled, replied - spoke_until
    finally:
        await phone.hang_up()


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:7.1f} ms   max {max(values) * 1000:7.1f} ms"


async def seed(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.apply(conn)
        ws = await factories.workspace(conn, credits_minor=1_000_000)
        agent = await factories.agent(
            conn, ws.id, greeting="Hello, you reached Acme.", modality="voice"
        )
        await factories.channel(conn, ws.id, kind="voice", number=NUMBER, agent_id=agent.id)
    finally:
        await conn.close()


async def run_calls(
    calls: int, livekit: LiveKitServer, bridge: SipBridge
) -> dict[str, list[tuple[float, float]]]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        livekit={
            "url": livekit.url,
            "api_key": livekit.api_key,
            "api_secret": livekit.api_secret,
            "sip_allowed_addresses": ["127.0.0.0/8"],
        },
        worker={"agent_name": AGENT},
    )
    await sync_inbound_sip(settings, [NUMBER])
    speech_8k = espeak_pcm(UTTERANCE, rate=8_000)
    speech_48k = espeak_pcm(UTTERANCE, rate=48_000)
    results: dict[str, list[tuple[float, float]]] = {"sip": [], "direct": []}
    for i in range(calls):
        # Alternate so drift (warm caches, a busy machine) hits both paths alike.
        results["sip"].append(await sip_call(bridge, speech_8k))
        results["direct"].append(await direct_call(livekit, speech_48k))
        print(f"call pair {i + 1}/{calls} done", flush=True)
    return results


def main(calls: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="wassla-bench-sip-"))
    data_dir.chmod(0o755)  # the embedded Postgres may run as its own system user
    dsn = start_embedded(data_dir)
    asyncio.run(seed(dsn))
    standin = OpenAIStandIn(default_reply="We are open from nine to five.").start()
    redis = RedisServer.start()
    livekit = LiveKitServer.start(redis_host=redis.address)
    bridge = SipBridge.start(livekit, redis)
    health_port = free_port()
    env = worker_env(
        livekit=livekit, openai_base_url=standin.base_url, pg_dsn=dsn, data_dir=data_dir,
        s3_endpoint="http://127.0.0.1:9", health_port=health_port,
        extra={"RECORDINGS_BACKEND": "local"},
    )  # fmt: skip
    worker = start_worker(env, health_port)
    try:
        results = asyncio.run(run_calls(calls, livekit, bridge))
    finally:
        worker.stop()
        bridge.stop()
        livekit.stop()
        redis.stop()
        standin.stop()

    print(f"\n{calls} calls per path, alternating:")
    for figure, index in (("answer -> greeting", 0), ("turn (end of speech -> reply)", 1)):
        sip = [r[index] for r in results["sip"]]
        direct = [r[index] for r in results["direct"]]
        print(f"  {figure}")
        print(f"    sip     {summary(sip)}")
        print(f"    direct  {summary(direct)}")
        ratio = statistics.median(sip) / statistics.median(direct)
        print(f"    ratio sip/direct (p50): {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5)
    main(parser.parse_args().calls)
