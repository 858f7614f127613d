"""The console in headless Chromium against the real gateway: live inbox and conversation
(SMS in, the reply out, no reload), the Channels tiles, a recording that plays, roles."""

from __future__ import annotations

import io
import math
import struct
import uuid
import wave

import asyncpg
import httpx
from playwright.async_api import Page, expect

from shared import billing, calls, conversations, recordings
from shared.models import ChargeKind
from shared.settings import Settings
from tests.conftest import PUBLIC_BASE_URL
from tests.console.conftest import OUTSIDER, OWNER, VIEWER, Demo, sign_in
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support import factories
from tests.support.live_gateway import LiveGateway
from tests.support.sms import CONTACT, inbound_params
from tests.support.twilio_signing import post_signed

LIVE_WAIT_MS = 20_000  # a shared 2-core machine: generous


async def _text(gateway: LiveGateway, body: str) -> None:
    """A signed SMS as Twilio posts it, to the served gateway."""
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        response = await post_signed(
            http,
            "/twilio-sms",
            inbound_params(body),
            signed_url=PUBLIC_BASE_URL + "/twilio-sms",
        )
    assert response.status_code == 200, response.text


async def _live(page: Page) -> None:
    """The page's event stream is listening (it re-read its regions then)."""
    await expect(page.locator("html")).to_have_attribute("data-live", "ready")
    await page.evaluate("window.__sameDocument = true")


async def _same_document(page: Page) -> bool:
    return bool(await page.evaluate("window.__sameDocument === true"))


async def test_a_text_and_its_reply_appear_live_in_the_inbox_and_the_conversation(
    page: Page,
    gateway: LiveGateway,
    demo: Demo,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sign_in(page, gateway, OWNER)
    await expect(page.locator("h1")).to_contain_text("Inbox")
    await expect(page.locator("p.empty")).to_be_visible()
    await _live(page)

    # A slow model: the text is in the inbox well before its reply is.
    openai_standin.script_chat(ChatScript("We have green tea.", first_token_delay=1.5))
    await _text(gateway, "Which teas do you have?")
    row = page.locator("table.inbox tbody tr")
    await expect(row).to_have_count(1, timeout=LIVE_WAIT_MS)
    await expect(row).to_contain_text(CONTACT)
    await expect(row).to_contain_text("SMS")
    await expect(row).to_contain_text("Sara")
    messages = row.locator("td.num").first
    await expect(messages).to_have_text("2", timeout=LIVE_WAIT_MS)  # the reply was stored
    assert len(twilio_standin.messages) == 1
    assert await _same_document(page)

    await row.locator("a").click()
    await expect(page.locator(".turn.agent .body")).to_have_text(["We have green tea."])
    await _live(page)
    openai_standin.script_chat(ChatScript("Oolong too, since today.", first_token_delay=1.5))
    await _text(gateway, "Any oolong?")
    caller = page.locator(".turn.caller .body")
    await expect(caller).to_have_text(
        ["Which teas do you have?", "Any oolong?"], timeout=LIVE_WAIT_MS
    )
    agent = page.locator(".turn.agent .body")
    await expect(agent).to_have_text(
        ["We have green tea.", "Oolong too, since today."], timeout=LIVE_WAIT_MS
    )
    assert await _same_document(page)


async def test_the_connect_form_shows_the_friendly_e164_error(
    page: Page, gateway: LiveGateway, demo: Demo
) -> None:
    await sign_in(page, gateway, OWNER)
    await page.goto(f"{gateway.base_url}/console/w/{demo.workspace.id}/channels")
    voice = page.locator('.tile[data-kind="voice"]')
    await expect(voice.locator(".chip")).to_have_text("Not connected")
    await voice.locator('input[name="phone_number"]').fill("5551234567")
    await voice.locator('button[type="submit"]').click()
    error = voice.locator(".error")
    await expect(error).to_be_visible()
    await expect(error).to_have_text(
        "The number needs a plus sign and country code. Use the international format with a"
        " plus sign and country code, e.g. +14155552671."
    )
    # Then a good number connects, and the tile shows it with its webhook URL.
    await voice.locator('input[name="phone_number"]').fill("+1 (555) 765-4321")
    await voice.locator('button[type="submit"]').click()
    await expect(voice.locator(".chip")).to_have_text("Connected")
    await expect(voice.locator(".number")).to_contain_text("+15557654321")
    await expect(voice.locator("code.url")).to_have_text(PUBLIC_BASE_URL + "/twilio-voice")
    # Disconnect asks first; dismissed, nothing changes; accepted, it is gone.
    page.once("dialog", lambda dialog: dialog.dismiss())
    await voice.locator("button.disconnect").click()
    await expect(voice.locator(".chip")).to_have_text("Connected")
    page.once("dialog", lambda dialog: dialog.accept())
    await voice.locator("button.disconnect").click()
    await expect(voice.locator(".chip")).to_have_text("Not connected")


async def test_a_trial_workspace_shows_starter_required_and_no_form(
    page: Page, gateway: LiveGateway, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as conn:
        trial = await factories.workspace(conn, plan="trial", name="Trial Co")
        await conn.execute(
            "insert into workspace_members (workspace_id, user_id, role) values ($1, $2, 'owner')",
            trial.id,
            OWNER,
        )
    await sign_in(page, gateway, OWNER)
    await page.goto(f"{gateway.base_url}/console/w/{trial.id}/channels")
    for kind in ("sms", "voice"):
        tile = page.locator(f'.tile[data-kind="{kind}"]')
        await expect(tile.locator(".chip")).to_have_text("Starter required")
        await expect(tile.locator("form")).to_have_count(0)
        await expect(tile.locator("code.url")).to_have_count(0)


def _tone_wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


async def test_the_recording_of_a_finished_call_plays(
    page: Page, gateway: LiveGateway, demo: Demo, pool: asyncpg.Pool, settings: Settings
) -> None:
    voice = None
    async with pool.acquire() as conn:
        voice = await factories.channel(conn, demo.workspace.id, kind="voice")
        call_sid = "CA" + uuid.uuid4().hex
        call = await calls.open_call(
            conn,
            call_sid=call_sid,
            workspace_id=demo.workspace.id,
            channel_id=voice.id,
            agent_id=demo.agent.id,
            source="twilio",
            from_number=CONTACT,
            to_number=voice.phone_number,
            connected=True,
        )
        await calls.finish_call(conn, call_sid, status="completed", duration_seconds=62)
        store = gateway.app.state.gateway.services.recordings
        await recordings.save_recording(
            conn,
            store,
            workspace_id=demo.workspace.id,
            conversation_id=call.conversation_id,
            call_id=call.id,
            provider_id="RE" + uuid.uuid4().hex,
            data=_tone_wav(),
            content_type="audio/wav",
            extension="wav",
            duration_seconds=2,
        )
    await sign_in(page, gateway, OWNER)
    await page.goto(
        f"{gateway.base_url}/console/w/{demo.workspace.id}/conversations/{call.conversation_id}"
    )
    await expect(page.locator("h1")).to_contain_text("Call with " + CONTACT)
    await expect(page.locator(".charges-total")).to_have_text("$0.18")  # 2 minutes at 9 cents
    audio = page.locator("audio")
    await expect(audio).to_have_count(1)
    duration = await audio.evaluate(
        """a => new Promise((resolve, reject) => {
            const done = () => resolve(a.duration);
            if (a.readyState >= 1) return done();
            a.addEventListener('loadedmetadata', done, { once: true });
            const failed = () => reject(new Error('audio error ' + (a.error && a.error.code)));
            a.addEventListener('error', failed, { once: true });
            a.load();
        })"""
    )
    assert abs(duration - 2.0) < 0.1
    played = await audio.evaluate(
        """a => { a.muted = true; return a.play().then(() => new Promise(resolve =>
            setTimeout(() => resolve(a.currentTime), 500))); }"""
    )
    assert played > 0


async def test_a_viewer_sees_no_channel_forms(page: Page, gateway: LiveGateway, demo: Demo) -> None:
    await sign_in(page, gateway, VIEWER)
    await page.goto(f"{gateway.base_url}/console/w/{demo.workspace.id}/channels")
    sms = page.locator('.tile[data-kind="sms"]')
    await expect(sms.locator(".number")).to_contain_text(demo.sms.phone_number)
    await expect(page.locator("form.channel-form")).to_have_count(0)
    await expect(page.locator("button.disconnect")).to_have_count(0)
    # A write from the viewer's own browser session is refused by the Channels API.
    status = await page.evaluate(
        """url => fetch(url, {method: 'DELETE', headers: {'X-Wassla-Console': '1'}})
            .then(r => r.status)""",
        f"/api/workspaces/{demo.workspace.id}/channels/{demo.sms.id}",
    )
    assert status == 403


async def test_a_user_of_another_workspace_sees_nothing_of_it(
    page: Page, gateway: LiveGateway, demo: Demo
) -> None:
    await sign_in(page, gateway, OUTSIDER)
    await expect(page.locator("h1")).to_contain_text("Inbox")
    await expect(page.locator("h1")).to_contain_text("Other Co")
    response = await page.goto(f"{gateway.base_url}/console/w/{demo.workspace.id}/inbox")
    assert response is not None and response.status == 404
    await expect(page.locator("h1")).to_have_text("Not found")
    assert "Acme Tea" not in await page.content()


async def test_billing_shows_charges_and_the_balance_as_they_happen(
    page: Page, gateway: LiveGateway, demo: Demo, pool: asyncpg.Pool
) -> None:
    await sign_in(page, gateway, OWNER)
    await page.goto(f"{gateway.base_url}/console/w/{demo.workspace.id}/billing")
    await expect(page.locator(".balance")).to_have_text("$100.00")
    await expect(page.locator(".mode")).to_contain_text("Live")
    await _live(page)
    async with pool.acquire() as conn:
        await billing.record_charge(
            conn,
            workspace_id=demo.workspace.id,
            kind=ChargeKind.VOICE_MINUTES,
            quantity=3,
            idempotency_key=billing.charge_key(ChargeKind.VOICE_MINUTES, "CA" + uuid.uuid4().hex),
        )
    await expect(page.locator("tr[data-charge]")).to_have_count(1, timeout=LIVE_WAIT_MS)
    await expect(page.locator("tr[data-charge]")).to_contain_text("voice minutes")
    await expect(page.locator(".balance")).to_have_text("$99.73")
    assert await _same_document(page)


async def test_a_call_in_progress_updates_live_with_interrupted_replies_marked(
    page: Page, gateway: LiveGateway, demo: Demo, pool: asyncpg.Pool
) -> None:
    call_sid = "CA" + uuid.uuid4().hex
    async with pool.acquire() as conn:
        voice = await factories.channel(conn, demo.workspace.id, kind="voice")
        call = await calls.open_call(
            conn,
            call_sid=call_sid,
            workspace_id=demo.workspace.id,
            channel_id=voice.id,
            agent_id=demo.agent.id,
            source="livekit",
            from_number=CONTACT,
            to_number=voice.phone_number,
            connected=True,
        )
    await sign_in(page, gateway, OWNER)
    await page.goto(
        f"{gateway.base_url}/console/w/{demo.workspace.id}/conversations/{call.conversation_id}"
    )
    await expect(page.locator(".status")).to_have_text("live call")
    await _live(page)
    async with pool.acquire() as conn:
        await conversations.add_message(
            conn, call.conversation_id, direction="outbound", role="assistant",
            body="Hi there! Our opening hours are nine to five, and on weekends", interrupted=True,
        )  # fmt: skip
        await conversations.add_message(
            conn, call.conversation_id, direction="inbound", role="user", body="Are you open now?"
        )
    interrupted = page.locator(".turn.agent.interrupted")
    await expect(interrupted).to_have_count(1, timeout=LIVE_WAIT_MS)
    await expect(interrupted.locator(".mark")).to_have_text("interrupted")
    await expect(page.locator(".turn.caller .body")).to_have_text(["Are you open now?"])
    async with pool.acquire() as conn:
        await calls.finish_call(conn, call_sid, status="completed", duration_seconds=61)
    await expect(page.locator(".status")).to_have_text("closed", timeout=LIVE_WAIT_MS)
    await expect(page.locator(".call-status")).to_have_text("completed")
    await expect(page.locator(".charges-total")).to_have_text("$0.18")
    assert await _same_document(page)
