"""Two gateways and two SMS senders on one database, as in fly.toml (SMS_REPLIES=worker), one of
each SIGKILLed mid-burst: every text is stored once and answered at most once, each reply that
went out is charged once, and nothing is lost without a reason (real processes, real Postgres).

Twilio's behaviour is what the client here does: each text is posted twice at once (a
duplicate delivery), and a post that gets no answer or a 5xx is posted again, to whichever
gateway still answers, until it gets 200.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import ExitStack

import asyncpg
import httpx
import pytest

from shared.settings import Settings
from tests.conftest import PUBLIC_BASE_URL
from tests.standins.openai_api import ChatScript, OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.polling import eventually
from tests.support.service_processes import running_gateway_process, running_sender
from tests.support.sms import EMPTY_RESPONSE, inbound_params, message_sid, send_status, sms_setup
from tests.support.twilio_signing import post_signed

TEXTS = 60
KILL_GATEWAY_AT = 20  # text index
KILL_SENDER_AT = 30
# The lease a dead sender's claims lapse after (settings.sms.lease_seconds, 5 s), the sweep
# (2 s) and the model time, with room for the shared CI machine.
SETTLED_WITHIN_SECONDS = 30.0


@pytest.fixture
def settings(base_settings: Settings) -> Settings:
    return base_settings.changed({"sms.replies": "worker"})


def reply_id_of(status_callback: str) -> int:
    return int(status_callback.split("reply=", 1)[1].split("&", 1)[0])


@pytest.mark.timeout(120)
async def test_gateway_and_sender_killed_mid_burst_lose_and_double_nothing(
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    setup = await sms_setup(pool, credits_minor=10_000_000)
    # Replies take a moment to think, so the doomed sender holds claims when it dies.
    openai_standin.script_chat(
        *(ChatScript(openai_standin.default_reply, first_token_delay=1.0) for _ in range(TEXTS))
    )
    with ExitStack() as stack:
        gateways = [stack.enter_context(running_gateway_process(settings)) for _ in range(2)]
        senders = [stack.enter_context(running_sender(settings)) for _ in range(2)]
        for gateway in gateways:
            await gateway.wait_ready()
        for sender in senders:
            await sender.wait_listening()
        acknowledged: Counter[str] = Counter()
        failed_posts = 0

        async with httpx.AsyncClient(timeout=10) as http:

            async def post_until_ok(params: dict[str, str], first: int) -> None:
                nonlocal failed_posts
                for attempt in range(100):
                    target = gateways[(first + attempt) % len(gateways)]
                    try:
                        answer = await post_signed(
                            http, target.base_url + "/twilio-sms", params,
                            signed_url=PUBLIC_BASE_URL + "/twilio-sms",
                        )  # fmt: skip
                        if answer.status_code == 200:
                            assert answer.text == EMPTY_RESPONSE
                            acknowledged[params["MessageSid"]] += 1
                            return
                        assert answer.status_code >= 500, answer.text
                    except httpx.TransportError:
                        pass  # killed under the request, or refused: Twilio retries
                    failed_posts += 1
                    await asyncio.sleep(0.2)
                pytest.fail(f"{params['MessageSid']} never acknowledged")

            sids = [message_sid() for _ in range(TEXTS)]
            posts = []
            for i, sid in enumerate(sids):
                params = inbound_params(f"question {i}", sid=sid, From=f"+1555300{i:04d}")
                posts += [asyncio.create_task(post_until_ok(params, n)) for n in (0, 1)]
                if i == KILL_GATEWAY_AT:
                    # Left in the rotation, as Fly's proxy does until its health check fails:
                    # posts to it fail and go again to the other.
                    gateways[0].kill()
                if i == KILL_SENDER_AT:
                    senders[0].kill()
                    killed_sender_at = time.monotonic()
                    log = senders[0].log_path.read_text(errors="replace")
                    held_at_kill = log.count('"sms.reply_claimed"') - sum(
                        log.count(f'"{event}"')
                        for event in ("sms.reply_sent", "sms.reply_send_failed")
                    )
                await asyncio.sleep(0.05)
            await asyncio.gather(*posts)

            async def settled() -> bool:
                left: int = await pool.fetchval(
                    "select count(*) from sms_replies where status in ('pending', 'sending')"
                )
                total: int = await pool.fetchval("select count(*) from sms_replies")
                return left == 0 and total == TEXTS

            try:
                await eventually(
                    settled, within=SETTLED_WITHIN_SECONDS, interval=0.2, what="every reply settled"
                )
            except TimeoutError:
                rows = await pool.fetch("select id, status, error from sms_replies order by id")
                pytest.fail(f"{[dict(r) for r in rows]}\n{senders[1].log_tail(60)}")
            settled_after = time.monotonic() - killed_sender_at
            await asyncio.sleep(1.0)  # a reply sent twice would reach the stand-in by now

            # Twilio's status callbacks for what it accepted, to the gateway still up.
            sent = list(twilio_standin.messages)
            async with httpx.AsyncClient(base_url=gateways[1].base_url, timeout=10) as survivor:
                for message in sent:
                    for status in ("sent", "delivered"):
                        answer = await send_status(
                            survivor, message["status_callback"], message["sid"], status,
                            To=str(message["to"]),
                        )  # fmt: skip
                        assert answer.status_code == 200, answer.text

    assert failed_posts > 0, "no post reached the killed gateway: nothing was re-posted"
    assert held_at_kill > 0, "the killed sender held no claim: nothing was taken over"
    assert set(acknowledged) == set(sids)  # every text acknowledged, each post retried to 200
    # Stored once each.
    inbound = await pool.fetch("select provider_id from messages where direction = 'inbound'")
    assert sorted(r["provider_id"] for r in inbound) == sorted(sids)
    # One reply row each; sent to the stand-in at most once each.
    rows = await pool.fetch(
        "select r.id, r.status, r.error, r.message_sid, m.provider_id as inbound_sid"
        " from sms_replies r join messages m on m.id = r.inbound_message_id"
    )
    assert sorted(r["inbound_sid"] for r in rows) == sorted(sids)
    by_id = {r["id"]: r for r in rows}
    sends = Counter(by_id[reply_id_of(m["status_callback"])]["inbound_sid"] for m in sent)
    assert [sid for sid, n in sends.items() if n > 1] == [], "sent twice to the stand-in"
    # Each reply sent and recorded with the stand-in's MessageSid, or (killed between
    # `sending` and Twilio's answer) unknown with the reason, never re-sent.
    stand_in_sids = {m["sid"] for m in sent}
    for row in rows:
        if row["status"] == "sent":
            assert row["message_sid"] in stand_in_sids
        else:
            assert row["status"] == "unknown", dict(row)
            assert "process stopped during the send" in row["error"], dict(row)
            assert row["inbound_sid"] not in sends, f"sent but left unknown: {dict(row)}"
    unsent = [dict(r) for r in rows if r["status"] != "sent"]
    assert len(unsent) <= 3, f"more replies lost in flight than a kill can catch: {unsent}"
    # Charged once per reply that went out, after two billable callbacks each.
    charged = await pool.fetch(
        "select reference, quantity from charges where workspace_id = $1", setup.workspace.id
    )
    assert sorted(c["reference"] for c in charged) == sorted(stand_in_sids)
    assert settled_after < SETTLED_WITHIN_SECONDS
