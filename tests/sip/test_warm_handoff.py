"""Warm hand-offs over real SIP: SIPp calls in, the worker dials a second SIPp (the colleague).

The caller asks for a person; the worker puts them on hold and dials the agent's hand-off
number through the outbound trunk `sync_outbound_sip` (the code behind
`wassla livekit setup`) created, pointed at the colleague's SIPp. What each side hears is
their own RTP: the colleague hears the briefing before anyone is connected, the caller
hears none of it, and then the two hear each other. A colleague who never picks up is
CANCELled after the ring time and the caller is back with the agent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from livekit import api

from shared import handoff_summary, phrases
from shared.providers.livekit_sip import sync_outbound_sip
from shared.settings import Settings
from tests.sip.colleague import SippColleague
from tests.sip.conftest import Caller, livekit_env
from tests.sip.rtp import SAMPLE_RATE, RtpPeer
from tests.sip.test_livekit_setup import wassla
from tests.sip.test_sip_calls import OUR_NUMBER, bridge_call_id, converse, voice_line
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.support import factories
from tests.support.audio import SPEECH_RMS, espeak_pcm
from tests.support.calls import ended_call
from tests.support.livekit_server import LiveKitServer
from tests.support.polling import eventually

CALLER = "+15550002222"
COLLEAGUE = "+15559870001"
SUMMARY = "Mona is calling about order 1234 and wants to change its delivery address."
WITHIN = 45.0


@pytest.fixture
async def colleague_factory() -> AsyncIterator[list[SippColleague]]:
    started: list[SippColleague] = []
    yield started
    for colleague in started:
        await colleague.stop()


async def ring_colleague(
    started: list[SippColleague], sip_settings: Settings, scenario: str
) -> SippColleague:
    """A colleague's phone on loopback, and the outbound trunk pointed at it."""
    colleague = SippColleague(
        scenario=scenario, sip_port=0, called=COLLEAGUE, caller="", rtp_port=0
    )
    started.append(colleague)
    await colleague.start()
    trunk = await sync_outbound_sip(
        sip_settings.changed(
            {
                "livekit.sip_outbound_address": colleague.address,
                "livekit.sip_outbound_transport": "udp",
            }
        ),
        [OUR_NUMBER],
    )
    assert trunk is not None and trunk.address == colleague.address
    return colleague


def loudest(peer: RtpPeer, start: float, end: float) -> float:
    """The loudest packet `peer` heard between two moments."""
    return max((level for at, level in peer.heard if start <= at <= end), default=0.0)


def diagnostics(phone: Caller, colleague: SippColleague) -> str:
    return (
        f"--- colleague RTP: {colleague.rtp.packets_received} in,"
        f" {colleague.rtp.packets_sent} out\n{colleague.diagnostics()}\n{phone.diagnostics()}"
    )


def handoff_steps(phone: Caller, call_sid: str) -> list[str]:
    """The warm hand-off's log events for one call, in order, from the worker's JSON lines."""
    steps = {"dialing", "answered", "connected", "no_answer"}
    found = []
    for line in phone.worker.log().splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        event = str(entry.get("event", ""))
        if entry.get("call_sid") == call_sid and event.removeprefix("call.warm_handoff_") in steps:
            found.append(event)
    return found


def whispered(openai_standin: OpenAIStandIn) -> list[str]:
    opening = phrases.line("handoff_whisper", "en")
    return [
        r["body"]["input"]
        for r in openai_standin.speech_requests
        if r["body"]["input"].startswith(opening)
    ]


ASKED = "I need a person about my order 1234."


@pytest.mark.parametrize(
    ("summary_answer", "briefing"),
    [
        (ChatScript(SUMMARY), SUMMARY),
        # The model refuses the summary: the colleague still hears what the caller said.
        (ChatScript("", status=400), handoff_summary.fallback_summary([("user", ASKED)], "en")),
    ],
    ids=["model_summary", "fallback_summary"],
)
async def test_warm_handoff_briefs_the_colleague_then_connects_them_and_the_agent_leaves(
    pool: asyncpg.Pool,
    sip_settings: Settings,
    openai_standin: OpenAIStandIn,
    phone: Caller,
    colleague_factory: list[SippColleague],
    summary_answer: ChatScript,
    briefing: str,
) -> None:
    ws = await voice_line(pool, sip_settings, handoff_number=COLLEAGUE, handoff_mode="warm")
    colleague = await ring_colleague(colleague_factory, sip_settings, "human_answers.xml")
    openai_standin.script_transcripts(ASKED)
    openai_standin.script_chat(ChatScript("", tool_call="transfer_to_human"), summary_answer)

    call, rtp = await phone.dial(OUR_NUMBER, caller=CALLER)
    try:
        _, hold_at = await converse(phone, rtp, "I need a person about my order 1234 please.")
        # The colleague's phone rings, is answered, and they say hello at once, as people do.
        await eventually(colleague.answered, within=WITHIN, what="the colleague to answer")
        answered_at = colleague.rtp.say(espeak_pcm("Hello, Sam speaking.", rate=SAMPLE_RATE))
        await colleague.rtp.finish_saying()
        briefed_at = await colleague.rtp.wait_agent_speaking(after=answered_at, within=WITHIN)
        briefed_until = await colleague.rtp.wait_agent_quiet(after=briefed_at, within=WITHIN)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{diagnostics(phone, colleague)}") from exc

    # The briefing: the whisper line and the model's summary of the call, to the colleague.
    assert whispered(openai_standin) == [f"{phrases.line('handoff_whisper', 'en')} {briefing}"]
    summary_request = openai_standin.chat_requests[-1]["body"]["messages"]
    assert ASKED in summary_request[-1]["content"]
    # The briefing lasts as long as the stand-in's speech for it (0.06 s a character).
    assert briefed_until - briefed_at > 0.5 * 0.06 * len(whispered(openai_standin)[0])
    # Until then the caller heard neither the briefing nor the colleague's hello.
    assert hold_at < answered_at
    assert loudest(rtp, answered_at, briefed_until) < SPEECH_RMS, diagnostics(phone, colleague)

    # Connected: each hears the other, and the agent says nothing more.
    try:
        rtp.say(espeak_pcm("Hi Sam, thanks for taking my call.", rate=SAMPLE_RATE))
        caller_spoke = await rtp.finish_saying()
        heard_caller = await colleague.rtp.wait_agent_speaking(after=briefed_until, within=20)
        assert heard_caller < caller_spoke
        colleague.rtp.say(espeak_pcm("Sure, what is the new address?", rate=SAMPLE_RATE))
        heard_colleague = await rtp.wait_agent_speaking(after=caller_spoke, within=20)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{diagnostics(phone, colleague)}") from exc
    assert heard_colleague > briefed_until
    assert handoff_steps(phone, bridge_call_id(call)) == [
        "call.warm_handoff_dialing",
        "call.warm_handoff_answered",
        "call.warm_handoff_connected",
    ]

    # The caller hangs up: the colleague's leg is ended too (BYE), the call closed once.
    await call.press_hang_up()
    assert await call.wait(within=30) == 0, diagnostics(phone, colleague)
    assert await colleague.wait(within=30) == 0, diagnostics(phone, colleague)
    assert colleague.received("BYE ")
    ended = await ended_call(pool, bridge_call_id(call))
    handed_off = await pool.fetchval(
        "select handed_off from conversations where id = $1", ended.conversation_id
    )
    assert handed_off is True
    lines = await pool.fetch(
        "select role, body from messages where conversation_id = $1 order by id",
        ended.conversation_id,
    )
    said = [(m["role"], m["body"]) for m in lines]
    assert ("assistant", phrases.line("hold", "en")) in said
    # The briefing went to the colleague only; the caller's transcript does not hold it.
    assert not any(briefing in body for _, body in said)
    charges = await pool.fetch("select quantity from charges where workspace_id = $1", ws.id)
    assert [c["quantity"] for c in charges] == [1]


async def test_warm_handoff_nobody_answers_the_caller_is_told_and_goes_on_with_the_agent(
    pool: asyncpg.Pool,
    sip_settings: Settings,
    openai_standin: OpenAIStandIn,
    phone: Caller,
    colleague_factory: list[SippColleague],
) -> None:
    await voice_line(pool, sip_settings, handoff_number=COLLEAGUE, handoff_mode="warm")
    colleague = await ring_colleague(colleague_factory, sip_settings, "human_no_answer.xml")
    openai_standin.script_transcripts("Can I talk to a person?", "Then please note my address.")
    openai_standin.script_chat(
        ChatScript("", tool_call="transfer_to_human"), SUMMARY, "I have noted your new address."
    )

    call, rtp = await phone.dial(OUR_NUMBER, caller=CALLER)
    try:
        _, hold_at = await converse(phone, rtp, "Can I talk to a person please?")
        hold_until = await rtp.wait_agent_quiet(after=hold_at)
        # Rings for CALLS_WARM_RING_SECONDS (6 s in tests), then the bridge CANCELs.
        assert await colleague.wait(within=WITHIN) == 0, diagnostics(phone, colleague)
        told_at = await rtp.wait_agent_speaking(after=hold_until + 0.5, within=WITHIN)
        told_until = await rtp.wait_agent_quiet(after=told_at)
        # The call goes on: the caller is heard and answered by the agent again.
        rtp.say(espeak_pcm("Then please note my new address.", rate=SAMPLE_RATE))
        spoke_until = await rtp.finish_saying()
        reply_at = await rtp.wait_agent_speaking(after=spoke_until, within=30)
        await rtp.wait_agent_quiet(after=reply_at)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{diagnostics(phone, colleague)}") from exc
    assert told_at - hold_at > 5.0  # the 6 s ring, which starts with the hold line, came first
    assert reply_at > told_until
    assert colleague.received("CANCEL ") and not colleague.answered()
    assert not whispered(openai_standin)  # nobody answered: nobody was briefed

    await call.press_hang_up()
    assert await call.wait(within=30) == 0, diagnostics(phone, colleague)
    ended = await ended_call(pool, bridge_call_id(call))
    lines = await pool.fetch(
        "select role, body from messages where conversation_id = $1 order by id",
        ended.conversation_id,
    )
    said = [(m["role"], m["body"]) for m in lines]
    nobody = ("assistant", phrases.line("nobody_answered", "en"))
    assert nobody in said
    assert said[said.index(nobody) + 1 :] == [
        ("user", "Then please note my address."),
        ("assistant", "I have noted your new address."),
    ]
    handed_off = await pool.fetchval(
        "select handed_off from conversations where id = $1", ended.conversation_id
    )
    assert handed_off is False
    assert handoff_steps(phone, bridge_call_id(call)) == [
        "call.warm_handoff_dialing",
        "call.warm_handoff_no_answer",
    ]


async def test_livekit_setup_creates_the_outbound_trunk_for_warm_handoffs_then_updates_it(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path, sip_livekit: LiveKitServer
) -> None:
    name = f"wassla-out-{uuid.uuid4().hex[:8]}"
    env = {
        **livekit_env(sip_livekit),
        "LIVEKIT_SIP_TRUNK_NAME": name,
        "LIVEKIT_SIP_DISPATCH_RULE_NAME": name,
        "LIVEKIT_SIP_OUTBOUND_TRUNK_NAME": name,
        "LIVEKIT_SIP_OUTBOUND_ADDRESS": "acme.pstn.example.net",
        "LIVEKIT_SIP_OUTBOUND_TRANSPORT": "tcp",
        "LIVEKIT_SIP_OUTBOUND_AUTH_USERNAME": "wassla",
        "LIVEKIT_SIP_OUTBOUND_AUTH_PASSWORD": "carrier-pass-123",
    }
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await factories.channel(conn, ws.id, kind="voice", number="+15551240001")
    lk = api.LiveKitAPI(sip_livekit.url, sip_livekit.api_key, sip_livekit.api_secret)
    try:
        # Without an outbound address only the inbound side is set up.
        inbound_only = wassla(
            pg_dsn, data_dir, {**env, "LIVEKIT_SIP_OUTBOUND_ADDRESS": ""}, "--json",
            "livekit", "setup",
        )  # fmt: skip
        assert inbound_only.returncode == 0, inbound_only.stderr
        assert json.loads(inbound_only.stdout)["outbound_trunk"] == "not configured"

        first = wassla(pg_dsn, data_dir, env, "--json", "livekit", "setup")
        assert first.returncode == 0, first.stderr
        created = json.loads(first.stdout)
        assert created["outbound_trunk"] == "created"
        assert created["outbound_numbers"] == ["+15551240001"]  # our voice line as caller ID
        listed = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        trunks = [t for t in listed.items if t.name == name]
        assert [t.sip_trunk_id for t in trunks] == [created["outbound_trunk_id"]]
        assert trunks[0].address == "acme.pstn.example.net"
        assert trunks[0].transport == api.SIPTransport.SIP_TRANSPORT_TCP
        assert trunks[0].auth_username == "wassla"
        assert "carrier-pass-123" not in first.stdout + first.stderr

        # A hand-off caller ID of its own: the same trunk is updated, none added.
        second = wassla(
            pg_dsn, data_dir, {**env, "LIVEKIT_SIP_OUTBOUND_NUMBER": "+15551249999"}, "--json",
            "livekit", "setup",
        )  # fmt: skip
        assert second.returncode == 0, second.stderr
        updated = json.loads(second.stdout)
        assert (updated["outbound_trunk"], updated["outbound_trunk_id"]) == (
            "updated",
            created["outbound_trunk_id"],
        )
        listed = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        trunks = [t for t in listed.items if t.name == name]
        assert len(trunks) == 1 and list(trunks[0].numbers) == ["+15551249999"]
    finally:
        listed = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        inbound = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        rules = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        for r in rules.items:
            if r.name == name:
                await lk.sip.delete_dispatch_rule(
                    api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=r.sip_dispatch_rule_id)
                )
        trunk_ids = [t.sip_trunk_id for t in listed.items if t.name == name]
        trunk_ids += [t.sip_trunk_id for t in inbound.items if t.name == name]
        for trunk_id in trunk_ids:
            await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))
        await lk.aclose()
