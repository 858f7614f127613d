"""A phone's keypad over real SIP: SIPp's call, RFC 4733 telephone-events in its RTP, through
livekit-sip (which turns them into `sip_dtmf_received`) to the worker's session."""

from __future__ import annotations

import asyncpg

from shared import phrases
from shared.settings import Settings
from tests.sip.conftest import Caller
from tests.sip.test_sip_calls import CALLER, OUR_NUMBER, bridge_call_id, voice_line
from tests.standins.openai_api import OpenAIStandIn
from tests.support.polling import eventually

WITHIN = 30.0


async def test_keys_pressed_on_a_sip_phone_reach_the_model_as_the_callers_input(
    pool: asyncpg.Pool, sip_settings: Settings, openai_standin: OpenAIStandIn, phone: Caller
) -> None:
    openai_standin.reset()
    await voice_line(pool, sip_settings)
    openai_standin.script_chat("Order 42 ships tomorrow.")

    call, rtp = await phone.dial(OUR_NUMBER, caller=CALLER)
    try:
        greeted_at = await rtp.wait_agent_speaking(after=0.0, within=60)
        await rtp.wait_agent_quiet(after=greeted_at)
        rtp.press("42#")
        entry = phrases.line("keypad_entry", "en").format(digits="42")

        def asked() -> bool:
            return any(
                m.get("role") == "user" and m.get("content") == entry
                for r in openai_standin.chat_requests
                for m in r["body"]["messages"]
            )

        await eventually(asked, within=WITHIN, what="the keypad entry in a chat request")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{phone.diagnostics()}") from exc
    call_sid = bridge_call_id(call)

    async def stored() -> list[str] | None:
        rows = await pool.fetch(
            "select m.role, m.body from messages m join calls c"
            " on c.conversation_id = m.conversation_id where c.call_sid = $1 order by m.id",
            call_sid,
        )
        bodies = [f"{r['role']}: {r['body']}" for r in rows]
        return bodies if "assistant: Order 42 ships tomorrow." in bodies else None

    bodies = await eventually(stored, within=WITHIN, what="the entry and reply stored")
    assert f"user: {entry}" in bodies
    assert openai_standin.transcription_requests == []  # the keypad alone, no speech
    await call.press_hang_up()
