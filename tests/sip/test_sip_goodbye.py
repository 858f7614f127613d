"""The agent's goodbye reaches a real SIP phone in full before the bridge's BYE.

SIPp calls through livekit-sip and stays silent; the worker asks "are you still there?",
says its idle goodbye and ends the call (room deleted, so livekit-sip sends BYE). The RTP
endpoint times every packet, SIPp's trace the BYE.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg

from shared import phrases
from shared.settings import Settings
from tests.sip.conftest import Caller
from tests.sip.sipp import SippCall
from tests.sip.test_sip_calls import CALLER, OUR_NUMBER, bridge_call_id, voice_line
from tests.standins.openai_api import OpenAIStandIn
from tests.support.audio import loud_spans
from tests.support.calls import ended_call
from tests.support.polling import eventually


async def bye_arrival(call: SippCall) -> float:
    """When the bridge's BYE reached SIPp (its message trace, polled)."""
    await eventually(lambda: call.received("BYE"), within=90, interval=0.02, what="the BYE")
    return time.monotonic()


async def test_the_idle_goodbye_is_heard_in_full_over_rtp_before_the_bye(
    pool: asyncpg.Pool, sip_settings: Settings, openai_standin: OpenAIStandIn, phone: Caller
) -> None:
    openai_standin.reset()
    await voice_line(pool, sip_settings, idle_prompt_seconds=3, idle_goodbye_seconds=3)

    call, rtp = await phone.dial(OUR_NUMBER, caller=CALLER, scenario="agent_hangs_up.xml")
    bye = asyncio.create_task(bye_arrival(call))
    try:
        bye_at = await bye
        assert await call.wait(within=30) == 0
    except (TimeoutError, AssertionError) as exc:
        raise AssertionError(f"{exc}\n{phone.diagnostics()}") from exc
    spans = loud_spans(rtp.heard, gap=0.5)
    assert len(spans) >= 3, spans  # greeting, "are you still there?", goodbye
    goodbye = phrases.line("idle_goodbye", "en")
    start, end = spans[-1]
    expected = len(goodbye) * openai_standin.tts_seconds_per_char
    assert end - start >= expected - 0.2, (end - start, expected)
    assert end < bye_at

    call_sid = bridge_call_id(call)
    ended = await ended_call(pool, call_sid)
    assert ended.status == "completed"

    async def charged() -> int | None:
        count: int = await pool.fetchval(
            "select count(*) from charges where idempotency_key = $1", f"voice_minutes:{call_sid}"
        )
        return count or None

    assert await eventually(charged, within=30, what="the call's charge") == 1
