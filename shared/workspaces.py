"""Workspaces, their plans and members."""

from __future__ import annotations

from uuid import UUID

from shared.errors import InvalidInput, NotFound
from shared.models import BillingMode, Plan, Role, Workspace
from shared.pg import Connection

_COLUMNS = "id, name, plan, billing_mode, credit_balance_minor, enabled_calling_codes, created_at"


async def get_plan(conn: Connection, code: str) -> Plan:
    row = await conn.fetchrow("select * from plans where code = $1", code)
    if row is None:
        known = [r["code"] for r in await conn.fetch("select code from plans order by code")]
        raise InvalidInput(f"unknown plan {code!r}; known plans: {', '.join(known)}")
    return Plan.from_row(row)


async def create_workspace(
    conn: Connection,
    *,
    name: str,
    plan: str,
    billing_mode: BillingMode = BillingMode.INFRA_ONLY,
    credit_balance_minor: int = 0,
) -> Workspace:
    await get_plan(conn, plan)
    if not name.strip():
        raise InvalidInput("workspace name must not be empty")
    row = await conn.fetchrow(
        f"insert into workspaces (name, plan, billing_mode, credit_balance_minor)"
        f" values ($1, $2, $3, $4) returning {_COLUMNS}",
        name.strip(),
        plan,
        BillingMode(billing_mode).value,
        credit_balance_minor,
    )
    return Workspace.from_row(row)


async def get_workspace(conn: Connection, workspace_id: UUID) -> Workspace:
    row = await conn.fetchrow(f"select {_COLUMNS} from workspaces where id = $1", workspace_id)
    if row is None:
        raise NotFound(f"workspace {workspace_id} not found")
    return Workspace.from_row(row)


async def get_workspace_and_plan(conn: Connection, workspace_id: UUID) -> tuple[Workspace, Plan]:
    """The workspace and its plan in one round trip (checked before every AI spend)."""
    row = await conn.fetchrow(
        """
        select w.id, w.name, w.plan, w.billing_mode, w.credit_balance_minor,
               w.enabled_calling_codes, w.created_at, p.name as plan_name, p.includes_sms,
               p.includes_voice, p.sms_segment_price_minor, p.voice_minute_price_minor,
               p.currency
        from workspaces w join plans p on p.code = w.plan where w.id = $1
        """,
        workspace_id,
    )
    if row is None:
        raise NotFound(f"workspace {workspace_id} not found")
    plan = Plan.from_row({**dict(row), "code": row["plan"], "name": row["plan_name"]})
    return Workspace.from_row(row), plan


async def list_workspaces(conn: Connection) -> list[Workspace]:
    rows = await conn.fetch(f"select {_COLUMNS} from workspaces order by created_at, id")
    return [Workspace.from_row(r) for r in rows]


async def update_workspace(
    conn: Connection,
    workspace_id: UUID,
    *,
    name: str | None = None,
    plan: str | None = None,
    billing_mode: BillingMode | None = None,
    add_credits_minor: int | None = None,
    enable_calling_codes: list[int] | None = None,
    disable_calling_codes: list[int] | None = None,
) -> Workspace:
    """Change what is given; credits are added (negative to remove), never overwritten."""
    if plan is not None:
        await get_plan(conn, plan)
    row = await conn.fetchrow(
        f"""
        update workspaces set
            name = coalesce($2, name),
            plan = coalesce($3, plan),
            billing_mode = coalesce($4, billing_mode),
            credit_balance_minor = credit_balance_minor + coalesce($5, 0),
            enabled_calling_codes = array(
                select distinct c from unnest(enabled_calling_codes || $6::int[]) c
                where c <> all($7::int[]) order by c)
        where id = $1
        returning {_COLUMNS}
        """,
        workspace_id,
        name,
        plan,
        BillingMode(billing_mode).value if billing_mode else None,
        add_credits_minor,
        enable_calling_codes or [],
        disable_calling_codes or [],
    )
    if row is None:
        raise NotFound(f"workspace {workspace_id} not found")
    return Workspace.from_row(row)


async def add_member(conn: Connection, workspace_id: UUID, user_id: str, role: Role) -> None:
    """Add a member, or change the role of an existing one."""
    await get_workspace(conn, workspace_id)
    await conn.execute(
        """
        insert into workspace_members (workspace_id, user_id, role) values ($1, $2, $3)
        on conflict (workspace_id, user_id) do update set role = excluded.role
        """,
        workspace_id,
        user_id,
        Role(role).value,
    )


async def member_role(conn: Connection, workspace_id: UUID, user_id: str) -> Role | None:
    role = await conn.fetchval(
        "select role from workspace_members where workspace_id = $1 and user_id = $2",
        workspace_id,
        user_id,
    )
    return Role(role) if role else None
