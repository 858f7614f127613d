import asyncio

import asyncpg
import pytest

from shared import admission, billing, workspaces
from shared.errors import InvalidInput
from shared.models import BillingMode, ChannelKind, ChargeKind
from tests.support import factories


async def test_same_charge_recorded_concurrently_debits_once(
    pool: asyncpg.Pool, pg_dsn: str
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, credits_minor=1_000)
    # Eight separate connections (not a pool's shared one) race on one idempotency key.
    conns = [await asyncpg.connect(pg_dsn) for _ in range(8)]
    try:
        results = await asyncio.gather(
            *(
                billing.record_charge(
                    c,
                    workspace_id=ws.id,
                    kind=ChargeKind.VOICE_MINUTES,
                    quantity=3,
                    idempotency_key="voice_minutes:CA-race",
                )
                for c in conns
            )
        )
    finally:
        for c in conns:
            await c.close()
    assert sum(r.created for r in results) == 1
    assert len({r.charge_id for r in results}) == 1
    async with pool.acquire() as conn:
        after = await workspaces.get_workspace(conn, ws.id)
        charges = await billing.list_charges(conn, ws.id)
    starter_minute = 9
    assert after.credit_balance_minor == 1_000 - 3 * starter_minute
    assert len(charges) == 1
    assert charges[0]["amount_minor"] == 3 * starter_minute


async def test_charge_recorded_again_later_is_a_no_op(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, credits_minor=500)
        first = await billing.record_charge(
            conn,
            workspace_id=ws.id,
            kind=ChargeKind.OUTBOUND_MESSAGES,
            quantity=2,
            idempotency_key="outbound_messages:SM1",
        )
        again = await billing.record_charge(
            conn,
            workspace_id=ws.id,
            kind=ChargeKind.OUTBOUND_MESSAGES,
            quantity=5,  # a different quantity under the same key changes nothing
            idempotency_key="outbound_messages:SM1",
        )
        balance = (await workspaces.get_workspace(conn, ws.id)).credit_balance_minor
    assert first.created and not again.created
    assert again.charge_id == first.charge_id and again.quantity == 2
    assert balance == 500 - 2 * 4


async def test_charge_needs_positive_quantity(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        with pytest.raises(InvalidInput, match="positive"):
            await billing.record_charge(
                conn,
                workspace_id=ws.id,
                kind=ChargeKind.VOICE_MINUTES,
                quantity=0,
                idempotency_key="k",
            )


@pytest.mark.parametrize(
    ("plan", "mode", "credits", "kind", "allowed", "reason"),
    [
        ("starter", BillingMode.LIVE, 100, ChannelKind.SMS, True, None),
        ("starter", BillingMode.LIVE, 100, ChannelKind.VOICE, True, None),
        ("trial", BillingMode.LIVE, 100, ChannelKind.SMS, False, "plan_excludes_channel"),
        ("trial", BillingMode.LIVE, 100, ChannelKind.VOICE, False, "plan_excludes_channel"),
        ("starter", BillingMode.INFRA_ONLY, 100, ChannelKind.SMS, False, "infra_only"),
        ("starter", BillingMode.LIVE, 0, ChannelKind.VOICE, False, "no_credit"),
        ("starter", BillingMode.LIVE, -5, ChannelKind.SMS, False, "no_credit"),
    ],
)
async def test_may_spend(
    pool: asyncpg.Pool,
    plan: str,
    mode: BillingMode,
    credits: int,
    kind: ChannelKind,
    allowed: bool,
    reason: str | None,
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn, plan=plan, billing_mode=mode, credits_minor=credits)
        decision = await admission.may_spend(conn, ws.id, kind)
    assert decision.allowed is allowed
    assert decision.reason == reason


@pytest.mark.parametrize(("seconds", "minutes"), [(0, 0), (1, 1), (60, 1), (61, 2), (179, 3)])
def test_billable_minutes_round_up(seconds: int, minutes: int) -> None:
    assert billing.billable_minutes(seconds) == minutes
