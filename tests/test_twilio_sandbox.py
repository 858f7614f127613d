"""The dev stack's Twilio sandbox, driven by our real Twilio REST client as Twilio would be."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from shared.errors import ProviderStatusError
from shared.providers.twilio_rest import TwilioRest
from shared.settings import Settings
from tests.support.polling import eventually
from wassla.twilio_sandbox import ACCOUNT_SID, TwilioSandbox

TOKEN = "sandbox-test-token"
OURS, CONTACT = "+15551234567", "+15557654321"


@pytest.fixture
async def callbacks() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A status-callback receiver that keeps only what carries Twilio's valid signature."""
    received: list[dict[str, str]] = []

    async def status(request: web.Request) -> web.Response:
        fields = {k: str(v) for k, v in (await request.post()).items()}
        url = str(request.url)
        if RequestValidator(TOKEN).validate(url, fields, request.headers["X-Twilio-Signature"]):
            received.append(fields)
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/status", status)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/status", received
    await runner.cleanup()


def _client(base_url: str, token: str = TOKEN) -> TwilioRest:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        twilio={"account_sid": ACCOUNT_SID, "auth_token": token, "api_base_url": base_url},
    )
    return TwilioRest(settings, attempts=1)


async def test_the_sandbox_records_texts_and_reports_them_delivered_like_twilio(
    tmp_path: Path, callbacks: tuple[str, list[dict[str, str]]]
) -> None:
    callback_url, received = callbacks
    store = tmp_path / "messages.jsonl"
    sandbox = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=TOKEN, store=store)
    client = _client(await sandbox.start())
    try:
        sent = await client.send_message(
            to=CONTACT, from_=OURS, body="We open at nine.", status_callback=callback_url
        )
        assert sent.sid.startswith("SM") and sent.status == "queued"
        assert sent.num_segments == 1
        listed = await client.list_messages(to=CONTACT, from_=OURS)
        assert [(m.sid, m.body) for m in listed] == [(sent.sid, "We open at nine.")]
        assert await client.list_messages(to="+15550000000", from_=OURS) == []
        await eventually(lambda: len(received) == 2, within=10, what="two status callbacks")
        assert [c["MessageStatus"] for c in received] == ["sent", "delivered"]
        assert {c["MessageSid"] for c in received} == {sent.sid}
        with pytest.raises(ProviderStatusError) as too_long:
            await client.send_message(to=CONTACT, from_=OURS, body="x" * 1601, status_callback=None)
        assert too_long.value.status == 400 and too_long.value.code == 21617
        stranger = _client(sandbox.base_url, token="wrong-token")
        with pytest.raises(ProviderStatusError) as refused:
            await stranger.list_messages(to=CONTACT, from_=OURS)
        assert refused.value.status == 401 and refused.value.code == 20003
        await stranger.aclose()
    finally:
        await client.aclose()
        await sandbox.aclose()
    # A restarted sandbox (the next `wassla dev`) still shows the contact's phone.
    again = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=TOKEN, store=store)
    client = _client(await again.start())
    try:
        [kept] = await client.list_messages(to=CONTACT, from_=OURS)
        assert (kept.sid, kept.status) == (sent.sid, "delivered")
    finally:
        await client.aclose()
        await again.aclose()
