"""Small builders for test data through the real domain functions."""

from __future__ import annotations

from uuid import UUID

from shared import agents, channels, workspaces
from shared.agents import AgentFields
from shared.models import Agent, BillingMode, Channel, Workspace
from shared.pg import Connection


async def workspace(
    conn: Connection,
    *,
    plan: str = "starter",
    billing_mode: BillingMode = BillingMode.LIVE,
    credits_minor: int = 10_000,
    name: str = "Acme",
) -> Workspace:
    return await workspaces.create_workspace(
        conn, name=name, plan=plan, billing_mode=billing_mode, credit_balance_minor=credits_minor
    )


async def agent(conn: Connection, workspace_id: UUID, **fields: object) -> Agent:
    spec = AgentFields(name="Sara", instructions="You are helpful.", greeting="Hi there!")
    for key, value in fields.items():
        setattr(spec, key, value)
    return await agents.create_agent(conn, workspace_id, spec)


async def channel(
    conn: Connection,
    workspace_id: UUID,
    *,
    kind: str = "sms",
    number: str = "+15551234567",
    agent_id: UUID | None = None,
) -> Channel:
    return await channels.connect_channel(conn, workspace_id, kind, number, agent_id)
