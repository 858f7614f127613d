"""How an incoming call is answered: refusals, the LiveKit SIP hand-off and its fallback,
and the agent's language in the TwiML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import asyncpg
import httpx
import pytest

from shared.models import BillingMode
from shared.settings import Settings
from tests.standins.openai_api import OpenAIStandIn
from tests.support import factories
from tests.support.gateway import running_gateway
from tests.webhook_gateway.test_voice import (
    NUMBER,
    VOICE_URL,
    TwilioCall,
    assert_listens,
    spoken,
    verbs,
)

SIP_URI = "sip:wassla-test.sip.livekit.example;transport=tcp"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.changed({"voice.turn_deadline_seconds": 2.0})


async def _setup(
    pool: asyncpg.Pool,
    *,
    billing_mode: BillingMode = BillingMode.LIVE,
    credits: int = 10_000,
    number: str = NUMBER,
    **agent_fields: object,
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, billing_mode=billing_mode, credits_minor=credits)
        agent = await factories.agent(conn, ws.id, **agent_fields)
        await factories.channel(conn, ws.id, kind="voice", number=number, agent_id=agent.id)


async def _nothing_spent(pool: asyncpg.Pool, openai_standin: OpenAIStandIn) -> None:
    assert openai_standin.chat_requests == []
    assert await pool.fetchval("select count(*) from calls") == 0
    assert await pool.fetchval("select count(*) from conversations") == 0
    assert await pool.fetchval("select count(*) from charges") == 0


async def test_unknown_number_gets_an_empty_response_and_no_spend(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    doc = await TwilioCall(client, to="+15550000000").dial_in()
    assert verbs(doc) == []
    await _nothing_spent(pool, openai_standin)


async def test_disconnected_number_gets_an_empty_response_and_no_spend(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _setup(pool)
    await pool.execute("update channels set active = false")
    doc = await TwilioCall(client).dial_in()
    assert verbs(doc) == []
    await _nothing_spent(pool, openai_standin)


async def test_number_in_a_region_not_enabled_is_rejected(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _setup(pool, number="+201001234567")  # Egypt: not on the default allow-list
    doc = await TwilioCall(client, to="+201001234567").dial_in()
    assert verbs(doc) == ["Reject"]
    await _nothing_spent(pool, openai_standin)


@pytest.mark.parametrize(
    ("case", "billing_mode", "credits"),
    [
        ("plan_without_voice", BillingMode.LIVE, 10_000),
        ("infra_only", BillingMode.INFRA_ONLY, 10_000),
        ("no_credit", BillingMode.LIVE, 0),
    ],
)
async def test_workspace_that_may_not_spend_hears_a_polite_line_and_a_hang_up(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    case: str,
    billing_mode: BillingMode,
    credits: int,
) -> None:
    await _setup(pool, billing_mode=billing_mode, credits=credits)
    if case == "plan_without_voice":
        await pool.execute("update workspaces set plan = 'trial'")
    doc = await TwilioCall(client).dial_in()
    assert verbs(doc) == ["Say", "Hangup"]
    assert spoken(doc) == "Sorry, this line cannot take calls right now. Please try again later."
    await _nothing_spent(pool, openai_standin)


async def test_workspace_without_a_voice_capable_agent_hears_a_polite_line_and_a_hang_up(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _setup(pool, modality="text")
    doc = await TwilioCall(client).dial_in()
    assert verbs(doc) == ["Say", "Hangup"]
    assert "no one is available" in spoken(doc)
    await _nothing_spent(pool, openai_standin)


async def test_unbound_channel_routes_to_the_oldest_voice_capable_agent(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await factories.agent(conn, ws.id, name="Texter", modality="text", greeting="Text only")
        voice = await factories.agent(conn, ws.id, name="Caller", greeting="Voice agent here.")
        await factories.agent(conn, ws.id, name="Newer", greeting="Too new.")
        await factories.channel(conn, ws.id, kind="voice")
    call = TwilioCall(client)
    doc = await call.dial_in()
    assert spoken(doc) == "Voice agent here."
    assert await pool.fetchval("select agent_id from calls") == voice.id


async def test_arabic_agent_gets_arabic_gather_and_a_gulf_arabic_voice(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _setup(pool, language="ar-SA", greeting="أهلا بك في أكمي، كيف أقدر أساعدك؟")
    openai_standin.script_chat("طلبك في الطريق.")
    call = TwilioCall(client)
    doc = await call.dial_in()
    say = doc.find("Gather/Say")
    assert say is not None
    assert say.attrib == {"voice": "Polly.Hala-Neural", "language": "ar-AE"}
    assert say.text == "أهلا بك في أكمي، كيف أقدر أساعدك؟"
    assert_listens(doc, turn=1, language="ar-SA")
    doc = await call.say_words(doc, "وين طلبي؟")
    assert spoken(doc) == "طلبك في الطريق."
    assert_listens(doc, turn=2, language="ar-SA")
    # Arabic fixed lines too: 12 s of silence (four 3 s waits) asks whether they are there.
    for _ in range(4):
        doc = await call.stay_silent(doc)
    assert spoken(doc) == "هل ما زلت معي؟"


class TestLiveKitHandOff:
    @pytest.fixture
    def settings(self, base_settings: Settings) -> Settings:
        return base_settings.changed({"livekit.sip_uri": SIP_URI})

    async def test_call_is_dialled_into_livekit_sip_with_number_and_call_sid(
        self, client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
    ) -> None:
        await _setup(pool)
        call = TwilioCall(client)
        doc = await call.dial_in()
        assert verbs(doc) == ["Dial"]
        dial = doc.find("Dial")
        assert dial is not None
        assert dial.attrib["action"] == f"{VOICE_URL}/dial-status"
        assert dial.attrib["method"] == "POST"
        sip = dial.find("Sip")
        assert sip is not None
        assert sip.text == (
            f"sip:{NUMBER}@wassla-test.sip.livekit.example;transport=tcp"
            f"?X-Wassla-Call-Sid={call.call_sid}"
        )
        # One call and one conversation wait for the worker, which reopens them by CallSid.
        row = await pool.fetchrow("select source, connected_at from calls")
        assert row["source"] == "twilio" and row["connected_at"] is not None
        assert await pool.fetchval("select count(*) from conversations") == 1
        assert openai_standin.chat_requests == []

        # LiveKit carried the call to its end: hang up.
        done = await call.post(f"{VOICE_URL}/dial-status", DialCallStatus="completed")
        assert verbs(done) == ["Hangup"]

    async def test_sip_leg_answers_the_trunks_digest_challenge_when_credentials_are_set(
        self, settings: Settings, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
    ) -> None:
        with_auth = settings.changed(
            {"livekit.sip_auth_username": "twilio", "livekit.sip_auth_password": "s3cret"}
        )
        async with running_gateway(with_auth) as (_, c):
            await _setup(pool)
            doc = await TwilioCall(c).dial_in()
        sip = doc.find("Dial/Sip")
        assert sip is not None
        assert sip.attrib == {"username": "twilio", "password": "s3cret"}

    @pytest.mark.parametrize("dial_status", ["failed", "busy", "no-answer"])
    async def test_failed_sip_leg_falls_back_to_the_twiml_loop(
        self,
        client: httpx.AsyncClient,
        pool: asyncpg.Pool,
        openai_standin: OpenAIStandIn,
        dial_status: str,
    ) -> None:
        await _setup(pool, greeting="Hi from the fallback.")
        openai_standin.script_chat("Fallback reply.")
        call = TwilioCall(client)
        await call.dial_in()
        doc = await call.post(
            f"{VOICE_URL}/dial-status", DialCallStatus=dial_status, DialSipResponseCode="503"
        )
        assert verbs(doc) == ["Start", "Gather", "Redirect"]
        assert doc.find("Start/Recording") is not None
        assert spoken(doc) == "Hi from the fallback."
        assert_listens(doc, turn=1)
        doc = await call.say_words(doc, "Hello")
        assert spoken(doc) == "Fallback reply."
        assert await pool.fetchval("select count(*) from conversations") == 1
        assert await pool.fetchval("select count(*) from calls") == 1


def test_xml_is_well_formed_with_prolog() -> None:
    from webhook_gateway import voice_twiml
    from webhook_gateway.voice_languages import voice_locale

    doc = voice_twiml.say_and_hang_up(voice_locale("en-US"), "Fish & chips <now>")
    xml = doc.to_xml(xml_declaration=True)
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert ET.fromstring(xml.encode()).find("Say").text == "Fish & chips <now>"  # type: ignore[union-attr]
