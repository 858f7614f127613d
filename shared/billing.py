"""Billing core: may this workspace spend on AI now, and record a charge exactly once.

Every charge carries an idempotency key derived from the provider's own id
(`outbound_messages:<MessageSid>`, `voice_minutes:<CallSid>`); the same charge recorded
twice, concurrently or later, exists once and debits once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared import workspaces
from shared.errors import InvalidInput
from shared.models import BillingMode, ChannelKind, ChargeKind, Plan, Workspace
from shared.pg import Connection


class SpendBlock(StrEnum):
    PLAN_EXCLUDES_CHANNEL = "plan_excludes_channel"
    INFRA_ONLY = "infra_only"
    NO_CREDIT = "no_credit"


@dataclass(frozen=True)
class SpendDecision:
    allowed: bool
    reason: SpendBlock | None = None


@dataclass(frozen=True)
class ChargeResult:
    charge_id: UUID
    created: bool  # False when the key was already charged: nothing debited now
    quantity: int
    amount_minor: int


def decide_spend(workspace: Workspace, plan: Plan, kind: ChannelKind) -> SpendDecision:
    """AI spend is allowed when the plan includes the channel, billing is live, credit is left."""
    if not plan.includes(kind):
        return SpendDecision(False, SpendBlock.PLAN_EXCLUDES_CHANNEL)
    if workspace.billing_mode != BillingMode.LIVE:
        return SpendDecision(False, SpendBlock.INFRA_ONLY)
    if workspace.credit_balance_minor <= 0:
        return SpendDecision(False, SpendBlock.NO_CREDIT)
    return SpendDecision(True)


async def may_spend(conn: Connection, workspace_id: UUID, kind: ChannelKind) -> SpendDecision:
    workspace, plan = await workspaces.get_workspace_and_plan(conn, workspace_id)
    return decide_spend(workspace, plan, kind)


def billable_minutes(duration_seconds: int) -> int:
    """Whole minutes, rounded up (61 s -> 2)."""
    return math.ceil(max(duration_seconds, 0) / 60)


def _unit_price(plan: Plan, kind: ChargeKind) -> int:
    if kind is ChargeKind.OUTBOUND_MESSAGES:
        return plan.sms_segment_price_minor
    return plan.voice_minute_price_minor


async def record_charge(
    conn: Connection,
    *,
    workspace_id: UUID,
    kind: ChargeKind,
    quantity: int,
    idempotency_key: str,
    conversation_id: UUID | None = None,
    reference: str | None = None,
) -> ChargeResult:
    """Insert the charge and debit the balance in one transaction, once per idempotency key."""
    if quantity <= 0:
        raise InvalidInput("a charge needs a positive quantity")
    kind = ChargeKind(kind)
    async with conn.transaction():
        plan_code = await conn.fetchval("select plan from workspaces where id = $1", workspace_id)
        if plan_code is None:
            raise InvalidInput(f"workspace {workspace_id} not found")
        plan = await workspaces.get_plan(conn, plan_code)
        unit = _unit_price(plan, kind)
        # The unique key makes a concurrent duplicate wait for us, then do nothing.
        row = await conn.fetchrow(
            """
            insert into charges (workspace_id, kind, quantity, unit_price_minor, amount_minor,
                                 idempotency_key, conversation_id, reference)
            values ($1, $2, $3::int, $4::bigint, $3::int * $4::bigint, $5, $6, $7)
            on conflict (idempotency_key) do nothing
            returning id, quantity, amount_minor
            """,
            workspace_id,
            kind.value,
            quantity,
            unit,
            idempotency_key,
            conversation_id,
            reference,
        )
        if row is None:
            existing = await conn.fetchrow(
                "select id, quantity, amount_minor from charges where idempotency_key = $1",
                idempotency_key,
            )
            assert existing is not None
            return ChargeResult(
                existing["id"], False, existing["quantity"], existing["amount_minor"]
            )
        await conn.execute(
            "update workspaces set credit_balance_minor = credit_balance_minor - $2 where id = $1",
            workspace_id,
            row["amount_minor"],
        )
        return ChargeResult(row["id"], True, row["quantity"], row["amount_minor"])


async def list_charges(conn: Connection, workspace_id: UUID) -> list[dict[str, object]]:
    rows = await conn.fetch(
        """
        select id, kind, quantity, unit_price_minor, amount_minor, idempotency_key,
               conversation_id, reference, created_at
        from charges where workspace_id = $1 order by created_at, id
        """,
        workspace_id,
    )
    return [dict(r) for r in rows]
