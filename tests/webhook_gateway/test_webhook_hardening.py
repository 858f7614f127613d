"""Webhooks under attack: unsigned requests that must not crash the signature check, signed
fields Postgres or XML cannot hold, and replays that keep Twilio's signature while moving
text between a field's value and the next field's name (issue 13, defects 1-3).

The property test at the end posts random fields and query strings to every webhook route,
signed and unsigned: never a 5xx, never a row from an unsigned request, every TwiML answer
well-formed XML.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import FormData, UploadFile

from shared import billing
from shared.sms_replies import status_callback_url
from tests.conftest import PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_TEST_TOKEN
from tests.standins.twilio_api import DROP, TwilioStandIn
from tests.support import factories
from tests.support.sms import (
    CONTACT,
    OUR_NUMBER,
    charges,
    inbound_count,
    inbound_params,
    message_sid,
    replies,
    send_sms,
    settle,
    sms_setup,
)
from tests.support.twilio_signing import sign

FORM = "application/x-www-form-urlencoded"
CALLER = "+14155550123"
VOICE_NUMBER = "+15551230000"
OTHER_NUMBER = "+15550000001"

# Every route Twilio posts to (webhook_gateway/routes/sms.py and voice.py).
WEBHOOK_ROUTES = [
    "/twilio-sms",
    "/twilio-sms/status",
    "/twilio-voice",
    "/twilio-voice/turn",
    "/twilio-voice/collect",
    "/twilio-voice/dial-status",
    "/twilio-voice/handoff-status",
    "/twilio-voice/status",
    "/twilio-voice/recording-status",
]

# What a webhook may write; an unsigned request must leave every one of them as it was.
WRITTEN_TABLES = (
    "messages",
    "conversations",
    "sms_replies",
    "calls",
    "charges",
    "voice_recording_fetches",
    "recordings",
)


async def post_form(
    client: httpx.AsyncClient,
    path_and_query: str,
    fields: list[tuple[str, str]],
    *,
    signature: str | None,
) -> httpx.Response:
    headers = {"Content-Type": FORM}
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return await client.post(path_and_query, content=urlencode(fields).encode(), headers=headers)


def signature_for(path_and_query: str, fields: dict[str, str]) -> str:
    return sign(PUBLIC_BASE_URL + path_and_query, fields)


async def row_counts(pool: asyncpg.Pool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in WRITTEN_TABLES:
        counts[table] = await pool.fetchval(f"select count(*) from {table}")  # noqa: S608
    return counts


@pytest.fixture
async def voice_channel(pool: asyncpg.Pool) -> AsyncIterator[None]:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id, greeting="Hi, this is Sara.", language="en-US")
        await factories.channel(conn, ws.id, kind="voice", number=VOICE_NUMBER, agent_id=agent.id)
    yield


def call_fields(call_sid: str, **fields: str) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": CALLER,
        "To": VOICE_NUMBER,
        "Direction": "inbound",
        "CallStatus": "in-progress",
        "ApiVersion": "2010-04-01",
        **fields,
    }


async def post_signed_fields(
    client: httpx.AsyncClient, path_and_query: str, fields: dict[str, str]
) -> httpx.Response:
    signature = signature_for(path_and_query, fields)
    return await post_form(client, path_and_query, list(fields.items()), signature=signature)


# --- defect 1: the signature check crashed on a "bodySHA256" that is not a query parameter --


@pytest.mark.parametrize("route", WEBHOOK_ROUTES)
@pytest.mark.parametrize("query", ["xbodySHA256=1", "bodySHA256=", "a=bodySHA256="])
async def test_json_body_without_a_real_body_sha256_parameter_is_403_not_500(
    client: httpx.AsyncClient, pool: asyncpg.Pool, route: str, query: str
) -> None:
    before = await row_counts(pool)
    response = await client.post(
        f"{route}?{query}",
        content=b'{"MessageSid": "SM1"}',
        headers={"Content-Type": "application/json", "X-Twilio-Signature": "anything"},
    )
    assert response.status_code == 403
    assert await row_counts(pool) == before


# --- defect 2: signed voice callbacks with values Postgres cannot hold ---------------------


async def test_nul_in_a_call_sid_is_a_400_and_writes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, voice_channel: None
) -> None:
    sid = "CA" + uuid.uuid4().hex
    for path in ("/twilio-voice", "/twilio-voice/turn?turn=1", "/twilio-voice/status"):
        response = await post_signed_fields(
            client, path, call_fields(sid[:10] + "\x00" + sid[10:], CallStatus="completed")
        )
        assert response.status_code == 400, (path, response.text)
    assert await row_counts(pool) == dict.fromkeys(WRITTEN_TABLES, 0)


async def test_nul_in_speech_is_dropped_and_the_turn_answers_twiml(
    client: httpx.AsyncClient, pool: asyncpg.Pool, voice_channel: None
) -> None:
    sid = "CA" + uuid.uuid4().hex
    answered = await post_signed_fields(client, "/twilio-voice", call_fields(sid))
    assert answered.status_code == 200
    turn = await post_signed_fields(
        client,
        "/twilio-voice/turn?turn=1",
        call_fields(sid, SpeechResult="I need\x00 help", Confidence="0.9"),
    )
    assert turn.status_code == 200, turn.text
    ET.fromstring(turn.content)
    said = await pool.fetch(
        "select body from messages where role = 'user' and provider_id like $1", f"{sid}:%"
    )
    assert [r["body"] for r in said] == ["I need help"]


async def test_call_duration_beyond_int32_still_closes_and_charges_the_call_once(
    client: httpx.AsyncClient, pool: asyncpg.Pool, voice_channel: None
) -> None:
    sid = "CA" + uuid.uuid4().hex
    assert (await post_signed_fields(client, "/twilio-voice", call_fields(sid))).status_code == 200
    status = call_fields(sid, CallStatus="completed", CallDuration="99999999999")
    first = await post_signed_fields(client, "/twilio-voice/status", status)
    retried = await post_signed_fields(client, "/twilio-voice/status", status)
    assert (first.status_code, retried.status_code) == (200, 200)
    call = await pool.fetchrow(
        "select ended_at, duration_seconds from calls where call_sid = $1", sid
    )
    assert call is not None and call["ended_at"] is not None
    assert 0 < call["duration_seconds"] <= 24 * 3600  # clamped to the longest call we accept
    rows = await pool.fetch("select quantity from charges where reference = $1", sid)
    assert [r["quantity"] for r in rows] == [billing.billable_minutes(call["duration_seconds"])]


async def test_odd_recording_callbacks_are_4xx_or_bounded_never_500(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_channel: None,
    twilio_standin: TwilioStandIn,
) -> None:
    sid = "CA" + uuid.uuid4().hex
    recording = "RE" + uuid.uuid4().hex
    fields = call_fields(
        sid,
        RecordingSid=recording,
        RecordingUrl=twilio_standin.recording_url(recording),
        RecordingStatus="completed",
        RecordingDuration="99999999999",
    )
    nul = await post_signed_fields(
        client, "/twilio-voice/recording-status", {**fields, "RecordingSid": recording + "\x00"}
    )
    assert nul.status_code == 400
    huge = await post_signed_fields(client, "/twilio-voice/recording-status", fields)
    assert huge.status_code == 200, huge.text
    stored = await pool.fetchval(
        "select duration_seconds from voice_recording_fetches where recording_sid = $1", recording
    )
    assert stored is not None and 0 < stored <= 24 * 3600


# --- defect 3: replays that keep the signature -----------------------------------------------


async def test_sms_replayed_with_the_next_field_folded_into_its_sid_is_rejected(
    app: FastAPI, client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    await sms_setup(pool)
    sid = message_sid()
    genuine = inbound_params("hello", sid=sid)
    signature = signature_for("/twilio-sms", genuine)
    assert (await send_sms(client, "hello", sid=sid)).status_code == 200
    await settle(app)

    # "MessageSid" + sid + "NumMedia" + "0" signs the same as "MessageSid" + (sid + "NumMedia0").
    replay = {k: v for k, v in genuine.items() if k != "NumMedia"}
    replay["MessageSid"] = sid + "NumMedia0"
    assert signature_for("/twilio-sms", replay) == signature
    response = await post_form(client, "/twilio-sms", list(replay.items()), signature=signature)
    await settle(app)
    assert response.status_code == 400
    assert await inbound_count(pool) == 1
    assert len(await replies(pool)) == 1


def status_fields(sid: str, status: str, *, from_: str, to: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": TWILIO_ACCOUNT_SID,
        "From": from_,
        "To": to,
        "ApiVersion": "2010-04-01",
    }


async def test_status_callback_moved_to_another_reply_writes_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    twilio_standin: TwilioStandIn,
) -> None:
    victim = await sms_setup(pool, number=OTHER_NUMBER, name="Victim")
    sender = await sms_setup(pool)
    app.state.gateway.sms_replier.retry_delays = ()
    # The victim's reply 1: the send's answer was lost, so it waits without a MessageSid.
    twilio_standin.message_failures.append(DROP)  # type: ignore[arg-type]
    await send_sms(client, "hi", To=OTHER_NUMBER)
    await settle(app)
    [lost] = await replies(pool)
    assert (lost["id"], lost["status"], lost["message_sid"]) == (1, "unknown", None)
    # The attacker's own reply is number 10, so its callback URL ends in "reply=10...".
    await pool.execute("select setval('sms_replies_id_seq', 9)")
    await send_sms(client, "hello")
    await settle(app)
    [sent] = twilio_standin.messages
    callback: str = sent["status_callback"]
    assert callback.startswith(f"{PUBLIC_BASE_URL}/twilio-sms/status?reply=10")
    genuine = status_fields(sent["sid"], "delivered", from_=OUR_NUMBER, to=CONTACT)
    signature = sign(callback, genuine)
    path = callback[len(PUBLIC_BASE_URL) :]

    # Everything after "reply=1" moves into the first field's name: the signed text is the same.
    cut = path.index("reply=10") + len("reply=1")
    moved, rest = path[:cut], path[cut:]
    replay = {(rest + k if k == "AccountSid" else k): v for k, v in genuine.items()}
    assert sign(PUBLIC_BASE_URL + moved, replay) == signature
    forged = await post_form(client, moved, list(replay.items()), signature=signature)
    assert forged.status_code in (400, 403)
    after = await pool.fetchrow("select status, message_sid from sms_replies where id = 1")
    assert after is not None and (after["status"], after["message_sid"]) == ("unknown", None)
    assert await charges(pool, victim.workspace.id) == []

    # The genuine callback still lands and charges the sender once.
    real = await post_form(client, path, list(genuine.items()), signature=signature)
    assert real.status_code == 200
    assert [r["quantity"] for r in await charges(pool, sender.workspace.id)] == [1]


async def test_status_callback_with_a_reply_id_not_signed_by_us_is_403(
    app: FastAPI, client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    await sms_setup(pool)
    await send_sms(client, "hello")
    await settle(app)
    [sent] = twilio_standin.messages
    fields = status_fields(sent["sid"], "delivered", from_=OUR_NUMBER, to=CONTACT)
    for query in ("reply=1&sig=00ff", "reply=1&sig=%C3%A9"):
        response = await post_signed_fields(client, f"/twilio-sms/status?{query}", fields)
        assert response.status_code == 403, query


async def test_signed_status_callback_between_other_numbers_does_not_resolve_the_reply(
    app: FastAPI, client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    victim = await sms_setup(pool, number=OTHER_NUMBER, name="Victim")
    app.state.gateway.sms_replier.retry_delays = ()
    twilio_standin.message_failures.append(DROP)  # type: ignore[arg-type]
    await send_sms(client, "hi", To=OTHER_NUMBER)
    await settle(app)
    [lost] = await replies(pool)
    assert (lost["status"], lost["message_sid"]) == ("unknown", None)
    url = status_callback_url(PUBLIC_BASE_URL, lost["id"], TWILIO_TEST_TOKEN)
    path = url[len(PUBLIC_BASE_URL) :]
    # Another workspace's message (its own number as From) cannot claim the victim's reply.
    fields = status_fields(message_sid(), "delivered", from_=OUR_NUMBER, to=CONTACT)
    response = await post_signed_fields(client, path, fields)
    assert response.status_code == 200
    after = await pool.fetchrow(
        "select status, message_sid from sms_replies where id = $1", lost["id"]
    )
    assert after is not None and (after["status"], after["message_sid"]) == ("unknown", None)
    assert await charges(pool, victim.workspace.id) == []


# --- property: random input on every route ---------------------------------------------------

_TWILIO_NAMES = [
    "MessageSid", "SmsSid", "SmsMessageSid", "CallSid", "RecordingSid", "AccountSid", "From",
    "To", "Body", "NumSegments", "NumMedia", "MessageStatus", "SmsStatus", "CallStatus",
    "CallDuration", "RecordingDuration", "RecordingUrl", "RecordingStatus", "SpeechResult",
    "Confidence", "DialCallStatus", "DialSipResponseCode", "ErrorCode", "OptOutType",
]  # fmt: skip
_NAMES = st.sampled_from(_TWILIO_NAMES) | st.text(max_size=12)
_HEX = st.text("0123456789abcdef", min_size=32, max_size=32)


def _payloads(live_call_sid: str) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Mostly Twilio-shaped forms (real ids, our numbers, a live call), randomly bent."""
    values = (
        st.text(max_size=40)
        | st.sampled_from(["", "0", "-1", "1", "2147483648", "99999999999", "completed",
                           "delivered", "in-progress", "no-answer", "failed", OUR_NUMBER,
                           VOICE_NUMBER, CONTACT, TWILIO_ACCOUNT_SID, live_call_sid])
        | st.builds(str.__add__, st.sampled_from(["SM", "MM", "CA", "RE", "AC"]), _HEX)
        | st.builds(str.__add__, st.sampled_from(["SM", "CA", "RE"]), st.text(max_size=34))
        | st.integers().map(str)
    )  # fmt: skip
    shaped = st.fixed_dictionaries(
        {"AccountSid": st.just(TWILIO_ACCOUNT_SID)},
        optional=dict.fromkeys([n for n in _TWILIO_NAMES if n != "AccountSid"], values),
    ).map(lambda d: list(d.items()))
    extra = st.lists(st.tuples(_NAMES, values), max_size=4)
    return st.builds(list.__add__, shaped, extra) | extra


_QUERIES = st.sampled_from(
    ["", "turn=1", "turn=2&silent=1", "wait=1", "reply=1", "reply=1&sig=00",
     "reply=1&sig=%C3%A9", "bodySHA256=", "xbodySHA256=1", "a=bodySHA256=",
     "turn=99999999999999"]
) | st.text("abcdefghijklmnopqrstuvwxyz0123456789=&%+", max_size=20)  # fmt: skip
# How a request arrives: signed form, unsigned form, or a JSON body with some signature.
_MODES = st.sampled_from(["signed", "unsigned", "json"])


@pytest.mark.parametrize("route", WEBHOOK_ROUTES)
async def test_random_input_never_5xx_never_writes_unsigned_and_twiml_is_xml(
    app: FastAPI,
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    voice_channel: None,
    route: str,
) -> None:
    await sms_setup(pool)
    live_call = "CA" + uuid.uuid4().hex
    assert (await post_signed_fields(client, "/twilio-voice", call_fields(live_call))).is_success
    loop = asyncio.get_running_loop()

    async def one(fields: list[tuple[str, str]], query: str, mode: str) -> None:
        path = f"{route}?{query}" if query else route
        before = await row_counts(pool)
        if mode == "json":
            response = await client.post(
                path,
                content=json.dumps(dict(fields)).encode(),
                headers={"Content-Type": "application/json",
                         "X-Twilio-Signature": sign(PUBLIC_BASE_URL + path, {})},
            )  # fmt: skip
        else:
            form = FormData(list[tuple[str, str | UploadFile]](fields))
            signed = mode == "signed"
            signature = sign(PUBLIC_BASE_URL + path, form) if signed else None  # type: ignore[arg-type]
            response = await post_form(client, path, fields, signature=signature)
        assert response.status_code < 500, (path, fields, response.text)
        if mode != "signed":
            assert response.status_code == 403
            assert await row_counts(pool) == before
        content_type = response.headers.get("content-type", "")
        if response.status_code == 200 and "xml" in content_type:
            root = ET.fromstring(response.content)
            assert root.tag == "Response"

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(fields=_payloads(live_call), query=_QUERIES, mode=_MODES)
    def property_holds(fields: list[tuple[str, str]], query: str, mode: str) -> None:
        asyncio.run_coroutine_threadsafe(one(fields, query, mode), loop).result(timeout=30)

    # Hypothesis drives the examples from a thread; each request runs on the test's loop.
    await asyncio.to_thread(property_holds)
    await app.state.gateway.services.drain(wait_seconds=15)
