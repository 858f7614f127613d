"""The gateway's Prometheus metrics: requests by route and status with latencies, replies by
outcome and charges by kind, on a metrics port of its own (never on the public port)."""

from __future__ import annotations

import asyncpg
import httpx

from shared.settings import Settings
from tests.standins.openai_api import OpenAIStandIn
from tests.standins.twilio_api import TwilioStandIn
from tests.support.gateway import running_gateway
from tests.support.metrics import scrape, value
from tests.support.processes import free_port
from tests.support.sms import EMPTY_RESPONSE, send_sms, send_status, settle, sms_setup

SMS = {"route": "/twilio-sms", "method": "POST", "status": "200"}
STATUS = {"route": "/twilio-sms/status", "method": "POST"}


async def test_a_text_its_reply_and_its_charge_move_the_gateways_counters(
    settings: Settings,
    pool: asyncpg.Pool,
    openai_standin: OpenAIStandIn,
    twilio_standin: TwilioStandIn,
) -> None:
    await sms_setup(pool)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    async with running_gateway(settings.changed({"metrics_port": port})) as (app, client):
        before = await scrape(url)
        assert (await send_sms(client, "hello")).text == EMPTY_RESPONSE
        await settle(app)  # inline mode: this process sent the reply
        [sent] = twilio_standin.messages
        response = await send_status(client, sent["status_callback"], sent["sid"], "delivered")
        assert response.status_code == 200
        after = await scrape(url)

        # Not on the public port: Twilio's side of the world never sees the figures.
        assert (await client.get("/metrics")).status_code == 404
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).status_code == 404

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("wassla_http_requests_total", **SMS) == 1
    assert moved("wassla_http_requests_total", **STATUS, status="200") == 1
    assert moved("wassla_http_request_duration_seconds_count", route="/twilio-sms") == 1
    assert moved("wassla_http_request_duration_seconds_bucket", route="/twilio-sms", le="+Inf") == 1
    assert moved("wassla_sms_replies_total", outcome="sent", reason="") == 1
    assert moved("wassla_charges_recorded_total", kind="outbound_messages") == 1


async def test_unmatched_paths_and_odd_methods_share_one_label_each(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    async with running_gateway(settings.changed({"metrics_port": port})) as (_, client):
        before = await scrape(url)
        for path in ("/nope", "/wp-admin/x.php", "/twilio-sms/../etc"):
            await client.get(path)
        await client.request("PURGE", "/twilio-sms")
        after = await scrape(url)
    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert (
        value(after, "wassla_http_requests_total", **unmatched)
        - value(before, "wassla_http_requests_total", **unmatched)
        == 3
    )
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("wassla_http")}
    assert not any(r and ("wp-admin" in r or "etc" in r) for r in routes)
    methods = {
        dict(labels).get("method") for name, labels in after if name.startswith("wassla_http")
    }
    assert "PURGE" not in methods and "OTHER" in methods
