"""Calls that never stall, on the worker: keypad, late-reply filler, failed replies, idle
callers, and goodbyes heard in full before the hang-up.

Real livekit-server, the one test worker, Postgres and the OpenAI stand-in; the caller is a
SIP-kind participant speaking espeak-ng audio and pressing keys with `publish_dtmf` (what
livekit-sip sends for a phone's RFC 2833 keypad events), or a playground participant.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS

from shared import phrases
from shared.settings import Settings
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.support.audio import SPEECH_RMS, espeak_pcm, loud_spans
from tests.support.calls import ended_call
from tests.support.livekit_tap import LiveKitTap
from tests.support.polling import eventually
from tests.support.worker_process import WorkerProcess
from tests.worker.conftest import CallFactory
from tests.worker.phone import Phone
from tests.worker.test_voice_calls import OUR_NUMBER, messages_of, voice_line

SETTINGS = Settings().calls
HANDOFF_NUMBER = "+15559876543"
GREETING = "Hello, you reached Acme."
WITHIN = 30.0
_DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


@pytest.fixture
def standin(openai_standin: OpenAIStandIn) -> OpenAIStandIn:
    openai_standin.reset()
    return openai_standin


@pytest.fixture
def tap(livekit_tap: LiveKitTap) -> LiveKitTap:
    livekit_tap.transfers.clear()
    livekit_tap.transfer_status = 200
    return livekit_tap


async def press(phone: Phone, keys: str, gap: float = 0.25) -> float:
    """Press `keys` on the caller's keypad; returns when the last one was sent (monotonic)."""
    for key in keys:
        await phone.room.local_participant.publish_dtmf(code=_DTMF_CODES[key], digit=key)
        await asyncio.sleep(gap)
    return time.monotonic() - gap


async def greeted(phone: Phone) -> float:
    """Wait out the greeting; when it ended (a long quiet: frames may come with gaps)."""
    at = await phone.wait_agent_speaking(after=0.0, within=30)
    return await phone.wait_agent_quiet(after=at, quiet=1.0)


def disconnect_clock(phone: Phone) -> list[float]:
    """When the caller's room connection ended (filled in once it does)."""
    times: list[float] = []
    phone.room.on("disconnected", lambda *_: times.append(time.monotonic()))
    return times


def user_inputs(standin: OpenAIStandIn) -> list[str]:
    """Every user message the model was sent, in order (repeats across turns included)."""
    return [
        str(m.get("content"))
        for r in standin.chat_requests
        for m in r["body"]["messages"]
        if m.get("role") == "user"
    ]


async def rows_with(pool: asyncpg.Pool, call_sid: str, *bodies: str) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record] | None:
        rows = await messages_of(pool, call_sid)
        have = [r["body"] for r in rows]
        return rows if all(b in have for b in bodies) else None

    return await eventually(probe, within=WITHIN, what=f"transcript rows {bodies}")


def assert_heard_in_full(phone: Phone, started: float, hung_up_at: float, text: str) -> None:
    """The last line's audio (the stand-in's TTS: a steady tone as long as the text) was
    heard to its end before the caller's connection ended."""
    loud = [at for at, level in phone.heard if at >= started and level >= SPEECH_RMS]
    assert loud, "the goodbye was not heard at all"
    expected = len(text) * 0.06  # OpenAIStandIn.tts_seconds_per_char
    heard_for = loud[-1] - loud[0]
    assert loud[-1] < hung_up_at
    assert heard_for >= expected - 0.15, (heard_for, expected)


# --- keypad ------------------------------------------------------------------------------


async def test_keys_typed_by_a_sip_caller_reach_the_model_as_their_input_and_the_transcript(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool, handoff_number=None)  # no hand-off: 0 is an ordinary key
    standin.script_chat("Order 0123 is on its way.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    await press(phone, "0123#")

    entry = phrases.line("keypad_entry", "en").format(digits="0123")
    rows = await rows_with(pool, call_sid, entry, "Order 0123 is on its way.")
    assert [(r["role"], r["body"]) for r in rows] == [
        ("assistant", GREETING),  # no "press 0" without a hand-off number
        ("user", entry),
        ("assistant", "Order 0123 is on its way."),
    ]
    assert user_inputs(standin) == [entry]
    assert standin.transcription_requests == []  # nothing was said: the keypad alone
    assert not phone.hung_up


async def test_an_entry_without_hash_ends_after_the_inter_digit_pause_and_is_bounded(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    standin.script_chat("Thanks, I have 42.", "Thanks, that is a long one.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    last_key_at = await press(phone, "42")
    await eventually(lambda: standin.chat_requests, within=WITHIN, what="the first entry")
    waited = standin.chat_requests[0]["at"] - (time.time() - (time.monotonic() - last_key_at))
    # The entry went to the model only once the caller paused for the inter-digit timeout.
    assert waited >= SETTINGS.keypad_digit_timeout_seconds - 0.3, waited

    await phone.wait_agent_quiet(after=time.monotonic(), within=30)
    # More keys than an entry holds: the entry is cut at the bound and the rest is the next.
    await press(phone, "7" * (SETTINGS.keypad_max_digits + 2), gap=0.05)
    await eventually(lambda: len(standin.chat_requests) >= 2, within=WITHIN, what="2nd entry")
    inputs = user_inputs(standin)
    assert phrases.line("keypad_entry", "en").format(digits="42") == inputs[0]
    bounded = phrases.line("keypad_entry", "en").format(digits="7" * SETTINGS.keypad_max_digits)
    assert bounded in inputs


async def test_the_hand_off_digit_transfers_a_sip_caller_at_once_without_the_model(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, tap: LiveKitTap
) -> None:
    await voice_line(pool, handoff_number=HANDOFF_NUMBER)

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    await press(phone, "0")
    await press(phone, "0")  # pressed again while "connecting" plays: changes nothing

    transfers = await eventually(
        lambda: list(tap.transfers), within=WITHIN, what="the SIP transfer request"
    )
    assert [(t.transfer_to, t.participant_identity) for t in transfers] == [
        (f"tel:{HANDOFF_NUMBER}", "sip_+15550001111")
    ]
    call = await ended_call(pool, call_sid)
    handed_off = await pool.fetchval(
        "select handed_off from conversations where id = $1", call.conversation_id
    )
    assert handed_off is True
    bodies = [r["body"] for r in await messages_of(pool, call_sid)]
    press_line = phrases.line("press_for_person", "en").format(digit="0")
    assert bodies[0] == f"{GREETING} {press_line}"
    # The press is in the transcript as what was pressed, before the agent's "connecting",
    # which the second press did not cut.
    assert bodies.count("(keypad) 0") == 1
    assert bodies.index("(keypad) 0") < bodies.index(phrases.line("connecting", "en"))
    rows = await messages_of(pool, call_sid)
    assert [r["interrupted"] for r in rows if r["body"] == phrases.line("connecting", "en")] == [
        False
    ]
    assert standin.chat_requests == []  # the model was never asked


async def test_a_playground_keypad_reaches_the_session_and_the_hand_off_digit_is_unavailable(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, tap: LiveKitTap
) -> None:
    line = await voice_line(pool, handoff_number=HANDOFF_NUMBER)
    standin.script_chat("Got your code 55.")

    phone, _room = await calls.open_playground(agent_id=str(line["agent"].id))
    await greeted(phone)
    await press(phone, "0")

    async def said(text: str) -> bool:
        rows = await pool.fetch(
            "select body from messages m join conversations c on c.id = m.conversation_id"
            " where c.workspace_id = $1",
            line["workspace"].id,
        )
        return any(r["body"] == text for r in rows)

    unavailable = phrases.line("transfer_failed", "en")
    await eventually(lambda: said(unavailable), within=WITHIN, what="hand-off unavailable")
    await press(phone, "55#")
    await eventually(lambda: said("Got your code 55."), within=WITHIN, what="the reply")
    assert user_inputs(standin) == [phrases.line("keypad_entry", "en").format(digits="55")]
    assert tap.transfers == []


async def test_a_warm_hand_off_livekit_cannot_dial_tells_the_caller_and_keeps_them(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, worker: WorkerProcess
) -> None:
    # A deployment whose LiveKit cannot dial out (this one runs no SIP service; likewise no
    # outbound trunk): the caller is told after the hold line and stays with the agent.
    await voice_line(pool, handoff_number=HANDOFF_NUMBER, handoff_mode="warm")
    standin.script_chat("I can help you with that myself.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    await press(phone, "0")

    nobody = phrases.line("nobody_answered", "en")

    async def told() -> list[str] | None:
        bodies = [r["body"] for r in await messages_of(pool, call_sid)]
        return bodies if nobody in bodies else None

    bodies = await eventually(told, within=WITHIN, what="the caller told nobody answered")
    assert bodies.index(phrases.line("hold", "en")) < bodies.index(nobody)
    failed = [line for line in worker.log().splitlines() if "call.warm_handoff_failed" in line]
    assert failed and "sip not connected" in failed[-1]  # the operator is told why
    # Still the agent's call: the caller's next words get an answer.
    await phone.wait_agent_quiet(after=time.monotonic())  # "nobody answered" played out
    phone.say(espeak_pcm("Can you help me then?"))
    spoke_until = await phone.finish_saying()
    assert await phone.wait_agent_speaking(after=spoke_until, within=WITHIN) > spoke_until
    assert not phone.hung_up
    handed_off = await pool.fetchval(
        "select c.handed_off from conversations c join calls k on k.conversation_id = c.id"
        " where k.call_sid = $1",
        call_sid,
    )
    assert handed_off is False


# --- no dead air -------------------------------------------------------------------------


async def test_a_late_model_reply_is_preceded_by_a_filler_the_caller_hears(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, worker: WorkerProcess
) -> None:
    await voice_line(pool)
    late = 6.0
    standin.script_chat(ChatScript("Your order shipped yesterday.", first_token_delay=late))

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    phone.say(espeak_pcm("Where is my order?"))
    spoke_until = await phone.finish_saying()
    await eventually(lambda: standin.chat_requests, within=WITHIN, what="the chat request")
    asked_at = standin.chat_requests[0]["at"] - (time.time() - time.monotonic())
    first_token_at = asked_at + late

    heard_at = await phone.wait_agent_speaking(after=spoke_until, within=WITHIN)
    # Agent audio reached the caller while the model had not sent a token yet...
    assert heard_at < first_token_at - 0.5, (heard_at - spoke_until, heard_at - asked_at)
    # ...not at once: only once the caller had waited the filler's delay after their turn.
    assert heard_at - spoke_until >= SETTINGS.late_reply_filler_seconds
    await rows_with(pool, call_sid, "Your order shipped yesterday.")
    (filler,) = worker.events("call.late_reply_filler", call_sid=call_sid)
    assert isinstance(filler["track_ready"], bool), filler
    # The track's publish is timed: it began half the filler's delay after the turn, and
    # ended before the clip reached the caller.
    (published,) = worker.events("call.late_reply_filler_published", call_sid=call_sid)
    assert 0 <= published["publish_ms"] < (heard_at - spoke_until) * 1000, published
    assert "late_reply_filler" in agent_track_names(phone)


def agent_track_names(phone: Phone) -> set[str]:
    return {
        publication.name
        for participant in phone.room.remote_participants.values()
        for publication in participant.track_publications.values()
    }


async def test_replies_on_time_publish_no_filler_track(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    """A published track is encoded even while silent (bench/README.md: about 0.02 of a
    core a call), so it waits for a reply that is actually late."""
    await voice_line(pool)
    standin.script_chat("Your order shipped yesterday.", "It comes on Monday.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    for question in ("Where is my order?", "When does it come?"):
        phone.say(espeak_pcm(question))
        spoke_until = await phone.finish_saying()
        answered_at = await phone.wait_agent_speaking(after=spoke_until, within=WITHIN)
        await phone.wait_agent_quiet(after=answered_at, quiet=0.5, within=WITHIN)
    await rows_with(pool, call_sid, "It comes on Monday.")
    names = agent_track_names(phone)
    assert names and "late_reply_filler" not in names, names


async def test_late_reply_audio_is_preceded_by_a_filler_the_caller_hears(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    standin.script_chat("Your order shipped yesterday.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    late = 5.0
    standin.tts_first_byte_delay = late  # the model is quick; the reply's audio is late
    try:
        phone.say(espeak_pcm("Where is my order?"))
        spoke_until = await phone.finish_saying()
        await eventually(lambda: standin.speech_requests[1:], within=WITHIN, what="the TTS")
        asked_at = standin.speech_requests[-1]["at"] - (time.time() - time.monotonic())
        heard_at = await phone.wait_agent_speaking(after=spoke_until, within=WITHIN)
    finally:
        standin.tts_first_byte_delay = 0.0
    assert heard_at < asked_at + late - 0.5, (heard_at - spoke_until, heard_at - asked_at)
    assert heard_at - spoke_until >= SETTINGS.late_reply_filler_seconds
    await rows_with(pool, call_sid, "Your order shipped yesterday.")


async def test_a_failed_model_reply_gets_an_apology_and_the_call_goes_on(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, tap: LiveKitTap
) -> None:
    await voice_line(pool)  # no hand-off number: failures never hand off
    standin.script_transcripts("Where is my order?", "Where is my order, please?", "Hello?")
    standin.script_chat(
        ChatScript("", status=400), ChatScript("", status=400), "It ships tomorrow."
    )

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    apology = phrases.line("apology", "en")
    for _ in range(3):
        phone.say(espeak_pcm("Where is my order?"))
        spoke_until = await phone.finish_saying()
        heard = await phone.wait_agent_speaking(after=spoke_until, within=WITHIN)
        await phone.wait_agent_quiet(after=heard)
    rows = await rows_with(pool, call_sid, "It ships tomorrow.")
    assistant = [r["body"] for r in rows if r["role"] == "assistant"]
    assert assistant == [GREETING, apology, apology, "It ships tomorrow."]
    assert tap.transfers == []
    assert not phone.hung_up


async def test_a_failed_tts_reply_gets_an_apology_and_the_call_goes_on(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    standin.script_transcripts("Where is my order?", "And my refund?")
    standin.script_chat("It ships tomorrow.", "Your refund is on its way.")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    # Every attempt at the reply's audio fails (the first and the framework's retries).
    standin.speech_failures = DEFAULT_API_CONNECT_OPTIONS.max_retry + 1
    phone.say(espeak_pcm("Where is my order?"))
    spoke_until = await phone.finish_saying()
    heard = await phone.wait_agent_speaking(after=spoke_until, within=30)
    await phone.wait_agent_quiet(after=heard)
    apology = phrases.line("apology", "en")
    await rows_with(pool, call_sid, apology)
    assert standin.speech_failures == 0

    phone.say(espeak_pcm("And my refund?"))
    await rows_with(pool, call_sid, "Your refund is on its way.")
    assert not phone.hung_up


async def test_a_failed_fixed_line_is_not_blamed_on_the_next_good_reply(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, worker: WorkerProcess
) -> None:
    await voice_line(pool)
    standin.script_transcripts("Where is my order?")
    standin.script_chat("It ships tomorrow.")
    # Every attempt at the greeting's audio fails: a fixed line (say), not a model reply.
    standin.speech_failures = DEFAULT_API_CONNECT_OPTIONS.max_retry + 1

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await eventually(
        lambda: standin.speech_failures <= 0, within=WITHIN, what="the greeting's failures"
    )
    phone.say(espeak_pcm("Where is my order?"))
    spoke_until = await phone.finish_saying()
    heard = await phone.wait_agent_speaking(after=spoke_until, within=30)
    await phone.wait_agent_quiet(after=heard, quiet=1.5)  # an apology would follow at once

    bodies = [r["body"] for r in await messages_of(pool, call_sid)]
    assert "It ships tomorrow." in bodies
    assert phrases.line("apology", "en") not in bodies
    failed = [line for line in worker.log().splitlines() if "call.reply_failed" in line]
    assert not [line for line in failed if call_sid in line]


async def test_repeated_reply_failures_hand_an_agent_with_a_number_off(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory, tap: LiveKitTap
) -> None:
    await voice_line(pool, handoff_number=HANDOFF_NUMBER)
    standin.script_chat(*[ChatScript("", status=400)] * SETTINGS.failures_before_handoff)

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    await greeted(phone)
    for _ in range(SETTINGS.failures_before_handoff):
        phone.say(espeak_pcm("Where is my order?"))
        spoke_until = await phone.finish_saying()
        heard = await phone.wait_agent_speaking(after=spoke_until, within=WITHIN)
        await phone.wait_agent_quiet(after=heard)

    transfers = await eventually(lambda: list(tap.transfers), within=WITHIN, what="transfer")
    assert [t.transfer_to for t in transfers] == [f"tel:{HANDOFF_NUMBER}"]
    bodies = [r["body"] for r in await messages_of(pool, call_sid)]
    apology = phrases.line("apology", "en")
    assert bodies.count(apology) == SETTINGS.failures_before_handoff - 1
    assert bodies[-1] == phrases.line("connecting", "en")


# --- idle callers and goodbyes heard in full ---------------------------------------------


async def test_an_idle_caller_is_asked_then_said_goodbye_to_and_the_call_ends_charged_once(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    line = await voice_line(pool, idle_prompt_seconds=3, idle_goodbye_seconds=3)

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    hung_up = disconnect_clock(phone)
    greeting_end = await greeted(phone)
    asked = await phone.wait_agent_speaking(after=greeting_end + 0.1, within=WITHIN)
    assert asked - greeting_end >= 3.0 - 0.3  # the agent's own idle_prompt_seconds
    # A long quiet: on a loaded machine a line's frames can arrive with gaps.
    asked_end = await phone.wait_agent_quiet(after=asked, quiet=1.2)
    goodbye_at = await phone.wait_agent_speaking(after=asked_end + 0.1, within=WITHIN)
    assert goodbye_at - asked_end >= 3.0 - 0.3
    await phone.wait_hung_up(within=WITHIN)

    goodbye = phrases.line("idle_goodbye", "en")
    assert_heard_in_full(phone, goodbye_at, hung_up[0], goodbye)
    call = await ended_call(pool, call_sid)
    assert call.status == "completed"
    bodies = [r["body"] for r in await messages_of(pool, call_sid)]
    assert bodies == [GREETING, phrases.line("still_there", "en"), goodbye]
    charges = await eventually(
        lambda: pool.fetch(
            "select idempotency_key from charges where workspace_id = $1", line["workspace"].id
        ),
        within=WITHIN,
        what="the call's charge",
    )
    assert [c["idempotency_key"] for c in charges] == [f"voice_minutes:{call_sid}"]
    assert standin.chat_requests == []


async def test_a_caller_who_answers_still_there_keeps_the_call(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool, idle_prompt_seconds=3, idle_goodbye_seconds=3)
    standin.script_transcripts("Yes, I am here.")
    standin.script_chat("Great, how can I help?")

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    greeting_end = await greeted(phone)
    asked = await phone.wait_agent_speaking(after=greeting_end + 0.1, within=WITHIN)
    await phone.wait_agent_quiet(after=asked, quiet=1.2)
    phone.say(espeak_pcm("Yes, I am here."))
    await rows_with(pool, call_sid, "Great, how can I help?")
    # Long past the goodbye's time after the question: the answer reset the idle clock.
    await asyncio.sleep(1.0)
    assert not phone.hung_up
    bodies = [r["body"] for r in await messages_of(pool, call_sid)]
    assert phrases.line("idle_goodbye", "en") not in bodies


async def test_the_end_call_goodbye_is_heard_in_full_before_the_hang_up(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    await voice_line(pool)
    standin.script_transcripts("That is all, goodbye.")
    standin.script_chat(ChatScript("", tool_call="end_call"))

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    hung_up = disconnect_clock(phone)
    await greeted(phone)
    phone.say(espeak_pcm("That is all, goodbye."))
    spoke_until = await phone.finish_saying()
    goodbye_at = await phone.wait_agent_speaking(after=spoke_until, within=WITHIN)
    await phone.wait_hung_up(within=30)
    assert_heard_in_full(phone, goodbye_at, hung_up[0], phrases.line("goodbye", "en"))
    await ended_call(pool, call_sid)


async def test_max_call_length_warns_then_says_goodbye_in_full_and_ends_the_call_charged(
    pool: asyncpg.Pool, standin: OpenAIStandIn, calls: CallFactory
) -> None:
    # The shortest call an agent allows, with the silent caller's idle prompt out of its way.
    line = await voice_line(pool, max_call_seconds=30, idle_prompt_seconds=300)

    phone, call_sid = await calls.dial(called_number=OUR_NUMBER)
    hung_up = disconnect_clock(phone)
    greeted_at = await phone.wait_agent_speaking(after=0.0, within=30)
    await phone.wait_hung_up(within=60)
    spans = loud_spans(phone.heard, gap=0.4)
    goodbye_at = spans[-1][0]
    assert_heard_in_full(phone, goodbye_at, hung_up[0], phrases.line("goodbye", "en"))
    assert time.monotonic() - greeted_at >= 29

    call = await ended_call(pool, call_sid)
    bodies = [r["body"] for r in await messages_of(pool, call_sid)]
    assert bodies == [
        "Hello, you reached Acme.",
        phrases.line("max_call_warning", "en"),
        phrases.line("goodbye", "en"),
    ]
    assert call.duration_seconds is not None and 30 <= call.duration_seconds < 45
    charged = await pool.fetchval(
        "select quantity from charges where workspace_id = $1", line["workspace"].id
    )
    assert charged == 1
