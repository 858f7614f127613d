import asyncio

import asyncpg
import pytest

from shared import agents, channels, routing
from shared.agents import AgentFields
from shared.errors import InvalidPhoneNumber, NotFound, NumberInUse, PlanExcludesChannel
from shared.models import ChannelKind, Modality
from tests.support import factories


async def test_bound_agent_wins_when_active(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        oldest = await factories.agent(conn, ws.id, name="Oldest")
        bound = await factories.agent(conn, ws.id, name="Bound")
        ch = await factories.channel(conn, ws.id, agent_id=bound.id)
        assert (await routing.route_agent(conn, ch, voice=False)).id == bound.id  # type: ignore[union-attr]
        await agents.update_agent(conn, bound.id, AgentFields(active=False))
        assert (await routing.route_agent(conn, ch, voice=False)).id == oldest.id  # type: ignore[union-attr]


async def test_voice_routes_only_to_voice_capable_agents(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        text_only = await factories.agent(conn, ws.id, name="Texter", modality=Modality.TEXT)
        ch = await factories.channel(conn, ws.id, kind="voice", agent_id=text_only.id)
        assert await routing.route_agent(conn, ch, voice=True) is None
        voice = await factories.agent(conn, ws.id, name="Talker", modality=Modality.VOICE)
        assert (await routing.route_agent(conn, ch, voice=True)).id == voice.id  # type: ignore[union-attr]
        sms = await factories.channel(conn, ws.id, kind="sms")
        assert (await routing.route_agent(conn, sms, voice=False)).id == text_only.id  # type: ignore[union-attr]


async def test_no_active_agent_routes_nowhere(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await factories.agent(conn, ws.id, active=False)
        ch = await factories.channel(conn, ws.id)
        assert await routing.route_agent(conn, ch, voice=False) is None


async def test_resolve_inbound_normalises_and_checks_region(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        await factories.channel(conn, ws.id, kind="sms", number="+201001234567")
        target = await routing.resolve_inbound(conn, ChannelKind.SMS, "+20 100 123 4567")
        assert target is not None and target.workspace.id == ws.id
        assert target.region_allowed is False
        from shared import workspaces

        await workspaces.update_workspace(conn, ws.id, enable_calling_codes=[20])
        target = await routing.resolve_inbound(conn, ChannelKind.SMS, "+201001234567")
        assert target is not None and target.region_allowed is True
        assert await routing.resolve_inbound(conn, ChannelKind.VOICE, "+201001234567") is None
        assert await routing.resolve_inbound(conn, ChannelKind.SMS, "garbage") is None


async def test_number_active_once_per_kind_across_workspaces(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        a = await factories.workspace(conn, name="A")
        b = await factories.workspace(conn, name="B")
        first = await factories.channel(conn, a.id, number="+15551234567")
        again = await factories.channel(conn, a.id, number="+1 555 123 4567")
        assert again.id == first.id  # reconnecting in the same workspace is idempotent
        with pytest.raises(NumberInUse):
            await factories.channel(conn, b.id, number="+15551234567")
        # The same number may serve voice too, and after a disconnect another workspace.
        await factories.channel(conn, b.id, kind="voice", number="+15551234567")
        await channels.disconnect_channel(conn, first.id)
        moved = await factories.channel(conn, b.id, number="+15551234567")
        assert moved.workspace_id == b.id


async def test_concurrent_connects_of_one_number_leave_one_active(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        workspaces_ = [await factories.workspace(conn, name=f"W{i}") for i in range(4)]

    async def connect(ws_id: object) -> str:
        async with pool.acquire() as c:
            try:
                await channels.connect_channel(c, ws_id, "sms", "+15550001111")  # type: ignore[arg-type]
                return "ok"
            except NumberInUse:
                return "in_use"

    outcomes = await asyncio.gather(*(connect(w.id) for w in workspaces_))
    assert sorted(outcomes) == ["in_use", "in_use", "in_use", "ok"]


async def test_plan_without_channel_cannot_connect(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, plan="trial")
        with pytest.raises(PlanExcludesChannel, match="Starter"):
            await factories.channel(conn, ws.id)


async def test_update_number_and_agent_binding(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        other = await factories.workspace(conn, name="Other")
        agent = await factories.agent(conn, ws.id)
        foreign = await factories.agent(conn, other.id)
        ch = await factories.channel(conn, ws.id)
        await factories.channel(conn, other.id, number="+15559990000")
        changed = await channels.update_channel(conn, ch.id, phone_number="+1 555 777 8888")
        assert changed.phone_number == "+15557778888"
        with pytest.raises(NumberInUse):
            await channels.update_channel(conn, ch.id, phone_number="+15559990000")
        with pytest.raises(InvalidPhoneNumber):
            await channels.update_channel(conn, ch.id, phone_number="5557778888")
        with pytest.raises(NotFound):
            await channels.update_channel(conn, ch.id, agent_id=foreign.id)
        await channels.update_channel(conn, ch.id, agent_id=agent.id)
        assert await channels.bound_agent_id(conn, ch.id) == agent.id
        await channels.update_channel(conn, ch.id, unbind_agent=True)
        assert await channels.bound_agent_id(conn, ch.id) is None
