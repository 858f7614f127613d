"""Conversations and their messages: what the inbox shows, written as it happens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

import asyncpg

from shared.errors import NotFound
from shared.pg import Connection

Direction = Literal["inbound", "outbound"]
MessageRole = Literal["user", "assistant", "system"]
ConversationKind = Literal["sms", "voice", "playground"]

_CONV_COLUMNS = (
    "id, workspace_id, channel_id, kind, agent_id, contact_number, status, handed_off,"
    " is_test, opened_at, closed_at, last_message_at"
)
_MSG_COLUMNS = (
    "id, conversation_id, direction, role, body, provider_id, status, interrupted,"
    " num_segments, created_at"
)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: UUID
    direction: str
    role: str
    body: str
    provider_id: str | None
    status: str | None
    interrupted: bool
    num_segments: int | None
    created_at: datetime
    created: bool = True  # False when a provider retry found the message already stored

    @classmethod
    def from_row(cls, row: asyncpg.Record, *, created: bool = True) -> StoredMessage:
        return cls(**dict(row), created=created)


async def open_conversation(
    conn: Connection,
    *,
    workspace_id: UUID,
    kind: ConversationKind,
    channel_id: UUID | None,
    contact_number: str | None,
    agent_id: UUID | None,
    is_test: bool = False,
) -> UUID:
    """A new conversation (one per call or playground session)."""
    conversation_id: UUID = await conn.fetchval(
        """
        insert into conversations (workspace_id, channel_id, kind, agent_id, contact_number,
                                   is_test)
        values ($1, $2, $3, $4, $5, $6) returning id
        """,
        workspace_id,
        channel_id,
        kind,
        agent_id,
        contact_number,
        is_test,
    )
    return conversation_id


async def add_message(
    conn: Connection,
    conversation_id: UUID,
    *,
    direction: Direction,
    role: MessageRole,
    body: str,
    provider_id: str | None = None,
    status: str | None = None,
    interrupted: bool = False,
    num_segments: int | None = None,
) -> StoredMessage:
    """Store a message once: a repeated `provider_id` returns the stored row with created=False."""
    # One round trip: the insert, and the conversation's last-message time when it was new.
    row = await conn.fetchrow(
        f"""
        with inserted as (
            insert into messages (conversation_id, direction, role, body, provider_id, status,
                                  interrupted, num_segments)
            values ($1, $2, $3, $4, $5, $6, $7, $8)
            on conflict (provider_id) do nothing
            returning {_MSG_COLUMNS}
        ), touched as (
            update conversations set last_message_at = inserted.created_at
            from inserted where conversations.id = inserted.conversation_id
        )
        select * from inserted
        """,
        conversation_id,
        direction,
        role,
        body,
        provider_id,
        status,
        interrupted,
        num_segments,
    )
    if row is None:
        existing = await conn.fetchrow(
            f"select {_MSG_COLUMNS} from messages where provider_id = $1", provider_id
        )
        assert existing is not None
        return StoredMessage.from_row(existing, created=False)
    return StoredMessage.from_row(row)


async def history(
    conn: Connection, conversation_id: UUID, *, limit: int = 50
) -> list[StoredMessage]:
    """The last `limit` messages in order (oldest first)."""
    rows = await conn.fetch(
        f"""
        select * from (
            select {_MSG_COLUMNS} from messages where conversation_id = $1
            order by id desc limit $2
        ) recent order by id
        """,
        conversation_id,
        limit,
    )
    return [StoredMessage.from_row(r) for r in rows]


async def history_before(
    conn: Connection, conversation_id: UUID, message_id: int, *, limit: int
) -> list[StoredMessage]:
    """The last `limit` messages stored before `message_id`, oldest first."""
    rows = await conn.fetch(
        f"""
        select * from (
            select {_MSG_COLUMNS} from messages where conversation_id = $1 and id < $2
            order by id desc limit $3
        ) recent order by id
        """,
        conversation_id,
        message_id,
        limit,
    )
    return [StoredMessage.from_row(r) for r in rows]


async def texts_from_contact(
    conn: Connection, channel_id: UUID, contact_number: str, *, limit: int = 50
) -> list[StoredMessage]:
    """The last `limit` texts `contact_number` sent to an SMS channel, over all its
    conversations (oldest first): the contact's side of the thread."""
    rows = await conn.fetch(
        f"""
        select * from (
            select {", ".join("m." + c.strip() for c in _MSG_COLUMNS.split(","))}
            from messages m join conversations c on c.id = m.conversation_id
            where c.channel_id = $1 and c.contact_number = $2 and c.kind = 'sms'
              and m.direction = 'inbound'
            order by m.id desc limit $3
        ) recent order by id
        """,
        channel_id,
        contact_number,
        limit,
    )
    return [StoredMessage.from_row(r) for r in rows]


async def get_message(conn: Connection, message_id: int) -> StoredMessage | None:
    row = await conn.fetchrow(f"select {_MSG_COLUMNS} from messages where id = $1", message_id)
    return StoredMessage.from_row(row, created=False) if row else None


async def close_conversation(conn: Connection, conversation_id: UUID) -> None:
    await conn.execute(
        "update conversations set status = 'closed', closed_at = coalesce(closed_at, now())"
        " where id = $1",
        conversation_id,
    )


async def mark_handed_off(conn: Connection, conversation_id: UUID) -> None:
    await conn.execute("update conversations set handed_off = true where id = $1", conversation_id)


async def get_conversation(conn: Connection, conversation_id: UUID) -> dict[str, object]:
    row = await conn.fetchrow(
        f"select {_CONV_COLUMNS} from conversations where id = $1", conversation_id
    )
    if row is None:
        raise NotFound(f"conversation {conversation_id} not found")
    return dict(row)


async def list_conversations(
    conn: Connection, workspace_id: UUID, *, limit: int = 100
) -> list[dict[str, object]]:
    rows = await conn.fetch(
        f"""
        select {_CONV_COLUMNS},
               (select count(*) from messages m where m.conversation_id = c.id) as message_count
        from conversations c where workspace_id = $1
        order by opened_at desc, id limit $2
        """,
        workspace_id,
        limit,
    )
    return [dict(r) for r in rows]


async def get_message_by_provider_id(conn: Connection, provider_id: str) -> StoredMessage | None:
    """The message stored under a provider id (e.g. a call turn's `<CallSid>:turn:3:user`)."""
    row = await conn.fetchrow(
        f"select {_MSG_COLUMNS} from messages where provider_id = $1", provider_id
    )
    return StoredMessage.from_row(row, created=False) if row else None
