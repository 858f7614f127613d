"""Billing core: record a charge exactly once. (Whether AI may spend is admission's rule.)

Every charge carries an idempotency key derived from the provider's own id by `charge_key`
(`outbound_messages:<MessageSid>`, `voice_minutes:<CallSid>`); the same charge recorded
twice, concurrently or later, exists once and debits once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

from shared import metrics, workspaces
from shared.errors import InvalidInput
from shared.models import ChargeKind, Plan
from shared.pg import Connection


@dataclass(frozen=True)
class ChargeResult:
    charge_id: UUID
    created: bool  # False when the key was already charged: nothing debited now
    quantity: int
    amount_minor: int


def charge_key(kind: ChargeKind, provider_id: str) -> str:
    """The idempotency key of the charge for one provider object (a MessageSid, a CallSid)."""
    return f"{ChargeKind(kind).value}:{provider_id}"


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
    # Counted once our transaction is done (a caller's own around it could still roll back).
    metrics.CHARGES.labels(kind.value).inc()
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
