"""`wassla livekit setup` against a real livekit-server with Redis (its SIP APIs need it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from livekit import api

from shared import channels
from tests.sip.conftest import livekit_env
from tests.support import factories
from tests.support.livekit_server import LiveKitServer
from tests.support.worker_process import AGENT_NAME


def wassla(
    pg_dsn: str, data_dir: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LIVEKIT_", "WORKER_"))}
    return subprocess.run(
        [sys.executable, "-m", "wassla.cli", *args],
        env={**clean, "DATABASE_URL": pg_dsn, "WASSLA_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def lkapi(sip_livekit: LiveKitServer) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(sip_livekit.url, sip_livekit.api_key, sip_livekit.api_secret)
    yield client
    await client.aclose()


async def named(lkapi: api.LiveKitAPI, name: str) -> tuple[list[Any], list[Any]]:
    trunks = await lkapi.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    rules = await lkapi.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    return (
        [t for t in trunks.items if t.name == name],
        [r for r in rules.items if r.name == name],
    )


async def test_livekit_setup_creates_trunk_and_rule_for_voice_numbers_then_updates_in_place(
    pool: asyncpg.Pool,
    pg_dsn: str,
    data_dir: Path,
    sip_livekit: LiveKitServer,
    lkapi: api.LiveKitAPI,
) -> None:
    # Its own names and numbers: the call tests keep their trunk on the same server.
    name = f"wassla-setup-{uuid.uuid4().hex[:8]}"
    env = {
        **livekit_env(sip_livekit),
        "LIVEKIT_SIP_ALLOWED_ADDRESSES": "127.0.0.0/8, 10.20.0.0/16",
        "LIVEKIT_SIP_TRUNK_NAME": name,
        "LIVEKIT_SIP_DISPATCH_RULE_NAME": name,
        "LIVEKIT_SIP_AUTH_USERNAME": "twilio",
        "LIVEKIT_SIP_AUTH_PASSWORD": "s3cret-pass",
    }
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id, modality="voice")
        await factories.channel(conn, ws.id, kind="voice", number="+15551230001", agent_id=agent.id)
        await factories.channel(conn, ws.id, kind="sms", number="+15551230002")
        gone = await factories.channel(conn, ws.id, kind="voice", number="+15551230003")
        await channels.disconnect_channel(conn, gone.id)

    try:
        first = wassla(pg_dsn, data_dir, env, "--json", "livekit", "setup")
        assert first.returncode == 0, first.stderr
        created = json.loads(first.stdout)
        assert created["numbers"] == ["+15551230001"]  # voice only, active only
        assert (created["trunk"], created["dispatch_rule"]) == ("created", "created")

        trunks, rules = await named(lkapi, name)
        assert [t.sip_trunk_id for t in trunks] == [created["trunk_id"]]
        trunk = trunks[0]
        assert list(trunk.numbers) == ["+15551230001"]
        assert dict(trunk.headers_to_attributes) == {"X-Wassla-Call-Sid": "wassla.call_sid"}
        assert list(trunk.allowed_addresses) == ["127.0.0.0/8", "10.20.0.0/16"]
        assert trunk.auth_username == "twilio"
        assert [r.sip_dispatch_rule_id for r in rules] == [created["dispatch_rule_id"]]
        rule = rules[0]
        assert list(rule.trunk_ids) == [created["trunk_id"]]
        assert rule.rule.WhichOneof("rule") == "dispatch_rule_individual"
        assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
        assert [a.agent_name for a in rule.room_config.agents] == [AGENT_NAME]

        # A second number is connected: the same trunk and rule are updated, none added.
        async with pool.acquire() as conn:
            await factories.channel(conn, ws.id, kind="voice", number="+15551230004")
        second = wassla(pg_dsn, data_dir, env, "--json", "livekit", "setup")
        assert second.returncode == 0, second.stderr
        updated = json.loads(second.stdout)
        assert (updated["trunk_id"], updated["dispatch_rule_id"]) == (
            created["trunk_id"],
            created["dispatch_rule_id"],
        )
        assert (updated["trunk"], updated["dispatch_rule"]) == ("updated", "updated")
        assert updated["numbers"] == ["+15551230001", "+15551230004"]
        trunks, rules = await named(lkapi, name)
        assert len(trunks) == 1 and len(rules) == 1
        assert sorted(trunks[0].numbers) == ["+15551230001", "+15551230004"]
        assert dict(trunks[0].headers_to_attributes) == {"X-Wassla-Call-Sid": "wassla.call_sid"}

        human = wassla(pg_dsn, data_dir, env, "livekit", "setup")
        assert human.returncode == 0, human.stderr
        assert f"trunk_id={created['trunk_id']}" in human.stdout
    finally:
        trunks, rules = await named(lkapi, name)
        for r in rules:
            await lkapi.sip.delete_dispatch_rule(
                api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=r.sip_dispatch_rule_id)
            )
        for t in trunks:
            await lkapi.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=t.sip_trunk_id))


async def test_livekit_setup_refuses_with_one_line_when_nothing_can_be_set_up(
    pool: asyncpg.Pool, pg_dsn: str, data_dir: Path, sip_livekit: LiveKitServer
) -> None:
    # No voice number: a trunk without numbers would take calls to any number.
    no_numbers = wassla(pg_dsn, data_dir, livekit_env(sip_livekit), "livekit", "setup")
    assert no_numbers.returncode == 2
    assert no_numbers.stderr.strip().count("\n") == 0
    assert "connect a voice channel" in no_numbers.stderr

    # No LiveKit credentials: the message names what to set.
    missing = wassla(pg_dsn, data_dir, {}, "livekit", "setup")
    assert missing.returncode == 2
    assert "LIVEKIT_URL" in missing.stderr and "LIVEKIT_API_SECRET" in missing.stderr

    # A wrong secret: LiveKit's refusal, as one line, not a traceback.
    bad = {**livekit_env(sip_livekit), "LIVEKIT_API_SECRET": "wrong-secret-" + "x" * 32}
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await factories.channel(conn, ws.id, kind="voice", number="+15551239999")
    refused = wassla(pg_dsn, data_dir, bad, "livekit", "setup")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("wassla: LiveKit refused the SIP setup")
    assert "Traceback" not in refused.stderr
