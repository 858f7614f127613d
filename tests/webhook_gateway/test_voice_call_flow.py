"""Calls that never stall on the TwiML loop: the keypad, idle callers, model failures, goodbyes
heard before the hang-up, and the warm hand-off, through the real gateway with signed webhooks.
"""

from __future__ import annotations

import logging
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from shared.models import BillingMode
from shared.settings import Settings
from tests.conftest import TWILIO_ACCOUNT_SID
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.support import factories
from tests.support.gateway import running_gateway
from tests.support.twilio_signing import post_signed
from tests.webhook_gateway.test_voice import (
    NUMBER,
    VOICE_URL,
    TwilioCall,
    assert_listens,
    spoken,
    transcript,
    verbs,
)

PERSON = "+15557654321"
GREETING = "Hi, this is Sara from Acme."
STILL_THERE = "Are you still there?"
APOLOGY = "Sorry, I had a problem answering that. Could you say it again?"


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.changed(
        {"voice.turn_deadline_seconds": 2.0, "voice.collect_wait_seconds": 3.0}
    )


async def _agent(pool: asyncpg.Pool, **fields: object) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id, greeting=GREETING, language="en-US", **fields)
        await factories.channel(conn, ws.id, kind="voice", number=NUMBER, agent_id=agent.id)


async def press(call: TwilioCall, doc: ET.Element, digits: str) -> ET.Element:
    """Answer the document's <Gather> with keys, as Twilio posts them."""
    gather = doc.find("Gather")
    assert gather is not None, ET.tostring(doc)
    return await call.post(gather.attrib["action"], Digits=digits)


def gather_text(doc: ET.Element) -> list[str]:
    return [say.text or "" for say in doc.findall("Gather/Say")]


def last_user_message(openai_standin: OpenAIStandIn) -> str:
    content: str = openai_standin.chat_requests[-1]["body"]["messages"][-1]["content"]
    return content


# --- keypad ---------------------------------------------------------------------------------


async def test_keypad_entry_reaches_the_model_and_is_stored_as_what_was_pressed(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool)
    openai_standin.script_chat("Order 12345 ships today.")
    call = TwilioCall(client)
    greeted = await call.dial_in()
    assert spoken(greeted) == GREETING  # no hand-off number: no "press 0"
    assert_listens(greeted, turn=1)
    doc = await press(call, greeted, "12345")
    assert spoken(doc) == "Order 12345 ships today."
    assert_listens(doc, turn=2)
    assert last_user_message(openai_standin) == "(keypad) 12345"
    assert (await transcript(pool, call.call_sid))[1:] == [
        ("user", "(keypad) 12345"),
        ("assistant", "Order 12345 ships today."),
    ]


async def test_handoff_key_transfers_at_once_without_the_model(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool, handoff_number=PERSON)
    call = TwilioCall(client)
    greeted = await call.dial_in()
    assert spoken(greeted) == f"{GREETING} To speak to a person at any time, press 0."
    doc = await press(call, greeted, "0")
    assert verbs(doc) == ["Say", "Dial"]
    assert spoken(doc) == "One moment please, I am transferring you to a colleague."
    dial = doc.find("Dial")
    assert dial is not None and (dial.text or "").strip() == PERSON
    assert openai_standin.chat_requests == []
    assert (await transcript(pool, call.call_sid))[1] == ("user", "(keypad) 0")
    handed_off = await pool.fetchval("select handed_off from conversations")
    assert handed_off is True


async def test_other_keys_with_a_handoff_number_still_go_to_the_model(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool, handoff_number=PERSON, handoff_digit="9")
    openai_standin.script_chat("Got it.")
    call = TwilioCall(client)
    greeted = await call.dial_in()
    assert spoken(greeted).endswith("press 9.")
    doc = await press(call, greeted, "0")  # not this agent's key
    assert spoken(doc) == "Got it."
    assert last_user_message(openai_standin) == "(keypad) 0"


async def test_greeting_offers_no_key_when_the_agent_has_no_handoff_digit(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await _agent(pool, handoff_number=PERSON, handoff_digit="")
    greeted = await TwilioCall(client).dial_in()
    assert spoken(greeted) == GREETING


async def test_hash_as_the_handoff_key_ends_entries_with_star_instead(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool, handoff_number=PERSON, handoff_digit="#")
    call = TwilioCall(client)
    greeted = await call.dial_in()
    gather = greeted.find("Gather")
    assert gather is not None and gather.attrib["finishOnKey"] == "*"
    doc = await press(call, greeted, "#")
    assert verbs(doc) == ["Say", "Dial"]
    assert openai_standin.chat_requests == []


@pytest.mark.parametrize("digits", ["12a", "1 2", "١٢", "9" * 300, "<x>"])
async def test_digits_that_are_not_keypad_keys_are_a_400(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn, digits: str
) -> None:
    await _agent(pool)
    call = TwilioCall(client)
    await call.dial_in()
    response = await call.post_raw(f"{VOICE_URL}/turn?turn=1&silent=0", Digits=digits)
    assert response.status_code == 400
    assert "keypad" in response.json()["detail"]
    assert openai_standin.chat_requests == []


async def test_a_keypad_entry_longer_than_the_setting_is_cut(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool)
    openai_standin.script_chat("Thanks.")
    call = TwilioCall(client)
    await press(call, await call.dial_in(), "1234567890" * 5)
    assert last_user_message(openai_standin) == "(keypad) " + ("1234567890" * 4)[:32]


# --- idle callers ---------------------------------------------------------------------------


async def test_silence_asks_whether_the_caller_is_there_then_says_goodbye_and_hangs_up(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    # Defaults: waits of 3 s (the keypad pause); "still there?" at 12 s, goodbye 8 s later.
    await _agent(pool)
    call = TwilioCall(client)
    doc = await call.dial_in()
    for silent in (1, 2, 3):
        doc = await call.stay_silent(doc)
        assert gather_text(doc) == []  # listening on quietly
        assert_listens(doc, turn=1, silent=silent)
    doc = await call.stay_silent(doc)
    assert gather_text(doc) == [STILL_THERE]
    assert_listens(doc, turn=1, silent=4)
    for silent in (5, 6):
        doc = await call.stay_silent(doc)
        assert gather_text(doc) == []
        assert_listens(doc, turn=1, silent=silent)
    doc = await call.stay_silent(doc)
    assert verbs(doc) == ["Say", "Hangup"]
    assert spoken(doc) == "I haven't heard anything, so I will end the call now. Goodbye!"
    assert openai_standin.chat_requests == []


async def test_an_agents_own_idle_timers_override_the_settings(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await _agent(pool, idle_prompt_seconds=6, idle_goodbye_seconds=3)
    call = TwilioCall(client)
    doc = await call.stay_silent(await call.dial_in())
    assert gather_text(doc) == []
    doc = await call.stay_silent(doc)
    assert gather_text(doc) == [STILL_THERE]
    doc = await call.stay_silent(doc)
    assert verbs(doc) == ["Say", "Hangup"]


async def test_idle_timers_follow_the_calls_settings(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    await _agent(pool)
    quick = settings.changed(
        {"calls.idle_prompt_seconds": 2.0, "calls.idle_goodbye_seconds": 2.0,
         "calls.keypad_digit_timeout_seconds": 2.0}
    )  # fmt: skip
    async with running_gateway(quick) as (_, client):
        call = TwilioCall(client)
        doc = await call.dial_in()
        gather = doc.find("Gather")
        assert gather is not None and gather.attrib["timeout"] == "2"
        doc = await call.stay_silent(doc)
        assert gather_text(doc) == [STILL_THERE]
        doc = await call.stay_silent(doc)
        assert verbs(doc) == ["Say", "Hangup"]


async def test_words_after_the_idle_prompt_start_the_count_again(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool, idle_prompt_seconds=3, idle_goodbye_seconds=3)
    openai_standin.script_chat("Yes, I'm here.")
    call = TwilioCall(client)
    doc = await call.stay_silent(await call.dial_in())
    assert gather_text(doc) == [STILL_THERE]
    doc = await call.say_words(doc, "Sorry, yes")
    assert spoken(doc) == "Yes, I'm here."
    assert_listens(doc, turn=2, silent=0)
    doc = await call.stay_silent(doc)
    assert gather_text(doc) == [STILL_THERE]


# --- no dead air: model failures ------------------------------------------------------------


async def test_a_model_failure_apologises_and_the_call_goes_on(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool)  # no hand-off number: failures never end the call
    openai_standin.script_chat(ChatScript("", status=400), ChatScript("", status=400), "Back!")
    call = TwilioCall(client)
    doc = await call.say_words(await call.dial_in(), "Hello?")
    assert spoken(doc) == APOLOGY
    assert_listens(doc, turn=2, failed=1)
    doc = await call.say_words(doc, "Hello again?")
    assert spoken(doc) == APOLOGY
    assert_listens(doc, turn=3, failed=2)
    doc = await call.say_words(doc, "Third try")
    assert spoken(doc) == "Back!"
    assert_listens(doc, turn=4)  # a reply ends the run of failures


async def test_failures_in_a_row_hand_off_to_the_agents_person(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool, handoff_number=PERSON)
    openai_standin.script_chat(ChatScript("", status=400), ChatScript("", status=400))
    call = TwilioCall(client)
    doc = await call.say_words(await call.dial_in(), "Hello?")
    assert spoken(doc) == APOLOGY
    assert_listens(doc, turn=2, failed=1)
    doc = await call.say_words(doc, "Hello again?")  # settings.calls.failures_before_handoff
    assert verbs(doc) == ["Say", "Dial"]
    dial = doc.find("Dial")
    assert dial is not None and (dial.text or "").strip() == PERSON
    assert dial.attrib["action"] == f"{VOICE_URL}/handoff-status?turn=3"
    # Nobody picks up: the agent takes the caller back with a fresh count.
    doc = await call.post(dial.attrib["action"], DialCallStatus="no-answer")
    assert spoken(doc) == "Sorry, no one could take your call right now. How else can I help?"
    assert_listens(doc, turn=3)


async def test_a_failure_then_a_reply_does_not_hand_off(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    await _agent(pool, handoff_number=PERSON)
    openai_standin.script_chat(ChatScript("", status=400), "Fine.", ChatScript("", status=400))
    call = TwilioCall(client)
    doc = await call.say_words(await call.dial_in(), "one")
    doc = await call.say_words(doc, "two")
    assert spoken(doc) == "Fine."
    doc = await call.say_words(doc, "three")
    assert spoken(doc) == APOLOGY  # one failure in a row, not two
    assert_listens(doc, turn=4, failed=1)


# --- goodbyes heard before the hang-up ------------------------------------------------------


def assert_goodbye_then_hang_up(doc: ET.Element, text: str) -> None:
    """The line and then <Hangup/>, in one document: Twilio plays a <Say> to its end first."""
    assert verbs(doc) == ["Say", "Hangup"], ET.tostring(doc)
    assert spoken(doc) == text


async def test_every_ending_says_its_goodbye_before_the_hang_up(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await _agent(pool, idle_prompt_seconds=3, idle_goodbye_seconds=3)
    # Idle caller.
    call = TwilioCall(client)
    doc = await call.stay_silent(await call.stay_silent(await call.dial_in()))
    assert_goodbye_then_hang_up(
        doc, "I haven't heard anything, so I will end the call now. Goodbye!"
    )
    # The agent's max call length.
    call = TwilioCall(client)
    first = await call.dial_in()
    await pool.execute(
        "update calls set connected_at = now() - interval '700 seconds' where call_sid = $1",
        call.call_sid,
    )
    assert_goodbye_then_hang_up(
        await call.say_words(first, "One more thing"),
        "We have reached the time limit for this call. Thank you for calling. Goodbye!",
    )
    # A call the workspace cannot take (no credit), and one with no voice agent.
    await pool.execute("update workspaces set credit_balance_minor = 0")
    assert_goodbye_then_hang_up(
        await TwilioCall(client).dial_in(),
        "Sorry, this line cannot take calls right now. Please try again later.",
    )
    await pool.execute("update workspaces set credit_balance_minor = 10000")
    await pool.execute("update agents set modality = 'text'")
    assert_goodbye_then_hang_up(
        await TwilioCall(client).dial_in(),
        "Sorry, no one is available to take your call right now. Goodbye.",
    )


# --- warm hand-off --------------------------------------------------------------------------


class PersonLeg:
    """Twilio's side of the leg to the person: the <Number url> runs on it before bridging."""

    def __init__(self, client: httpx.AsyncClient, parent: TwilioCall) -> None:
        self.client = client
        self.call_sid = "CA" + uuid.uuid4().hex
        self.parent = parent

    async def post(self, url: str, **fields: str) -> ET.Element:
        response = await self.post_raw(url, **fields)
        assert response.status_code == 200, response.text
        return ET.fromstring(response.content)

    async def post_raw(self, url: str, **fields: str) -> httpx.Response:
        params = {
            "CallSid": self.call_sid,
            "ParentCallSid": self.parent.call_sid,
            "AccountSid": TWILIO_ACCOUNT_SID,
            "From": NUMBER,
            "To": PERSON,
            "Direction": "outbound-dial",
            "CallStatus": "in-progress",
            **fields,
        }
        return await post_signed(self.client, url, params)


async def _warm_call(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    summary: ChatScript | str,
) -> tuple[TwilioCall, ET.Element]:
    """A warm agent's call up to the <Dial> to the person; `summary` is the model's briefing."""
    await _agent(pool, handoff_number=PERSON, handoff_mode="warm")
    openai_standin.script_chat("I'm sorry order 42 is late.", summary)
    call = TwilioCall(client)
    doc = await call.say_words(await call.dial_in(), "My order 42 is late, I want a refund")
    assert spoken(doc) == "I'm sorry order 42 is late."
    doc = await call.say_words(doc, "Let me talk to a human")
    return call, doc


def _dial(doc: ET.Element) -> tuple[ET.Element, ET.Element]:
    dial, number = doc.find("Dial"), doc.find("Dial/Number")
    assert dial is not None and number is not None, ET.tostring(doc)
    return dial, number


async def handed_off(pool: asyncpg.Pool) -> bool:
    value: bool = await pool.fetchval("select handed_off from conversations")
    return value


async def test_warm_handoff_briefs_the_person_who_accepts_with_1_then_bridges(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    briefing = "Sam's order 42 is late and he wants a refund."
    call, doc = await _warm_call(client, pool, openai_standin, briefing)
    # The caller hears the hold line while the person's phone rings.
    assert verbs(doc) == ["Say", "Dial"]
    assert spoken(doc) == "Please hold while I connect you to a colleague."
    dial, number = _dial(doc)
    assert (number.text or "").strip() == PERSON
    assert dial.attrib["action"] == f"{VOICE_URL}/handoff-status?turn=3&warm=1"
    assert dial.attrib["timeout"] == "25"  # settings.calls.warm_ring_seconds
    whisper_url = urlsplit(number.attrib["url"])
    assert f"{whisper_url.scheme}://{whisper_url.netloc}{whisper_url.path}" == (
        f"{VOICE_URL}/whisper"
    )
    assert parse_qs(whisper_url.query) == {"call": [call.call_sid], "turn": ["2"]}
    assert not await handed_off(pool)  # not until the person accepts

    # The person answers: their leg hears who, the summary, and how to accept; silence declines.
    person = PersonLeg(client, call)
    briefed = await person.post(number.attrib["url"])
    assert verbs(briefed) == ["Gather", "Hangup"]
    gather = briefed.find("Gather")
    assert gather is not None
    assert (gather.attrib["input"], gather.attrib["numDigits"]) == ("dtmf", "1")
    assert gather_text(briefed) == [
        "Hello, this is the AI assistant with a caller for you.",
        briefing,
        "Press 1 to take the call, or hang up to decline.",
    ]
    # The model was asked for the summary over the call so far.
    summary_request = openai_standin.chat_requests[-1]["body"]["messages"]
    assert "one short spoken paragraph" in summary_request[0]["content"]
    assert "Caller: My order 42 is late, I want a refund" in summary_request[1]["content"]
    assert "Assistant: I'm sorry order 42 is late." in summary_request[1]["content"]
    # The transcript keeps what the person was told, once.
    assert (await transcript(pool, call.call_sid))[-1] == ("system", briefing)
    again = await person.post(number.attrib["url"])  # Twilio retried the whisper
    assert gather_text(again)[1] == briefing
    assert len(openai_standin.chat_requests) == 2

    accepted = await person.post(gather.attrib["action"], Digits="1")
    assert verbs(accepted) == []  # an empty document: Twilio bridges the two
    assert await handed_off(pool)
    # The person and the caller talked, then hung up: the call is over.
    ended = await call.post(dial.attrib["action"], DialCallStatus="completed")
    assert verbs(ended) == ["Hangup"]


async def test_a_person_who_declines_sends_the_caller_back_to_the_agent(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    call, doc = await _warm_call(client, pool, openai_standin, "A refund for order 42.")
    dial, number = _dial(doc)
    person = PersonLeg(client, call)
    briefed = await person.post(number.attrib["url"])
    gather = briefed.find("Gather")
    assert gather is not None
    for answer in ("", "2"):  # no key before the wait ends, or another key
        declined = await person.post(gather.attrib["action"], Digits=answer)
        assert verbs(declined) == ["Hangup"]
    assert not await handed_off(pool)
    # Twilio reports the briefed leg as completed: the agent still takes the caller back.
    doc = await call.post(dial.attrib["action"], DialCallStatus="completed")
    assert spoken(doc) == "Sorry, no one is available right now. I'm still here to help."
    assert_listens(doc, turn=3)


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed", "canceled"])
async def test_a_warm_handoff_nobody_answers_resumes_the_loop(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn, status: str
) -> None:
    call, doc = await _warm_call(client, pool, openai_standin, "A refund.")
    dial, _ = _dial(doc)
    doc = await call.post(dial.attrib["action"], DialCallStatus=status)
    assert spoken(doc) == "Sorry, no one is available right now. I'm still here to help."
    assert_listens(doc, turn=3)


async def test_the_briefing_falls_back_to_the_callers_own_words_when_the_model_fails(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    call, doc = await _warm_call(client, pool, openai_standin, ChatScript("", status=400))
    _, number = _dial(doc)
    briefed = await PersonLeg(client, call).post(number.attrib["url"])
    assert gather_text(briefed)[1] == (
        "The caller said: My order 42 is late, I want a refund; Let me talk to a human."
    )


async def test_whisper_urls_are_checked_like_every_webhook(
    client: httpx.AsyncClient, pool: asyncpg.Pool, openai_standin: OpenAIStandIn
) -> None:
    call, doc = await _warm_call(client, pool, openai_standin, "A refund.")
    _, number = _dial(doc)
    person = PersonLeg(client, call)
    forged = await client.post(number.attrib["url"], data={"CallSid": person.call_sid})
    assert forged.status_code == 403  # unsigned
    bad = await person.post_raw(f"{VOICE_URL}/whisper?call=not-a-sid&turn=2")
    assert bad.status_code == 400
    missing = await person.post_raw(f"{VOICE_URL}/whisper?turn=2")
    assert missing.status_code == 400
    # A hand-off of a call that already ended declines the leg.
    await call.status("completed", 30)
    gone = await person.post(number.attrib["url"])
    assert verbs(gone) == ["Hangup"]


async def test_a_key_pressed_after_a_refused_call_dials_no_one(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, billing_mode=BillingMode.LIVE, credits_minor=0)
        agent = await factories.agent(conn, ws.id, handoff_number=PERSON)
        await factories.channel(conn, ws.id, kind="voice", number=NUMBER, agent_id=agent.id)
    call = TwilioCall(client)
    doc = await call.dial_in()
    assert verbs(doc) == ["Say", "Hangup"]
    late = await call.post(f"{VOICE_URL}/turn?turn=1&silent=0", Digits="0")
    assert verbs(late) == ["Hangup"]  # no live call: nothing is dialled


# --- the agent's voice ----------------------------------------------------------------------


def say_voices(doc: ET.Element) -> set[tuple[str, str]]:
    return {(s.attrib["voice"], s.attrib["language"]) for s in doc.iter("Say")}


async def test_the_loop_speaks_the_agents_voice_on_every_line(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="webhook_gateway.voice")
    await _agent(pool, voice="onyx")  # the worker's voice: a male en-US voice on the loop
    openai_standin.script_chat("Sure.")
    call = TwilioCall(client)
    greeted = await call.dial_in()
    doc = await call.say_words(greeted, "Hello")
    for document in (greeted, doc, await call.stay_silent(doc)):
        assert say_voices(document) <= {("Polly.Matthew-Neural", "en-US")}
    assert say_voices(greeted) == {("Polly.Matthew-Neural", "en-US")}
    assert not [r for r in caplog.records if r.msg == "voice_loop.voice_fallback"]


async def test_a_voice_of_another_language_falls_back_and_is_logged_once_a_call(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="webhook_gateway.voice")
    await _agent(pool)
    # Stored before validation existed (or the language changed later): French voice, en-US.
    await pool.execute("update agents set voice = 'Polly.Lea-Neural'")
    openai_standin.script_chat("Sure.")
    call = TwilioCall(client)
    greeted = await call.dial_in()
    doc = await call.say_words(greeted, "Hello")
    assert say_voices(greeted) == say_voices(doc) == {("Polly.Joanna-Neural", "en-US")}
    [logged] = [r for r in caplog.records if r.msg == "voice_loop.voice_fallback"]
    assert getattr(logged, "call_sid", None) == call.call_sid
    assert getattr(logged, "voice", None) == "Polly.Lea-Neural"
    assert getattr(logged, "fallback", None) == "Polly.Joanna-Neural"
