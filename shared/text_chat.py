"""The prompt of one text-chat turn, built the same way for SMS and the TwiML voice loop.

A turn is answered from the stored user message: the history is what the conversation held
before it, so a retried or resumed turn (another instance, a restart) sees the same prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared import conversations
from shared.conversations import StoredMessage
from shared.models import Agent
from shared.pg import Connection
from shared.providers.chat import ChatTurn
from shared.settings import Settings

MAX_HISTORY_CHARS = 12_000  # what a prompt may carry of history, whatever the message count
_DEFAULT_HISTORY_MESSAGES: int = Settings.model_fields["chat_history_messages"].default


@dataclass(frozen=True)
class Prompt:
    agent: Agent
    history: list[ChatTurn]
    user_text: str


def bounded_history(
    history: Sequence[ChatTurn], max_messages: int = _DEFAULT_HISTORY_MESSAGES
) -> list[ChatTurn]:
    """The most recent turns that fit both the message and the character budget."""
    kept: list[ChatTurn] = []
    chars = 0
    for turn in reversed(history[-max_messages:]):
        chars += len(turn.text)
        if chars > MAX_HISTORY_CHARS:
            break
        kept.append(turn)
    kept.reverse()
    return kept


async def prompt_for(
    conn: Connection, agent: Agent, user_message: StoredMessage, *, window: int
) -> Prompt:
    """The agent, the last `window` turns before the user's message, and its words."""
    earlier = await conversations.history_before(
        conn, user_message.conversation_id, user_message.id, limit=window
    )
    turns = [
        ChatTurn("user" if m.role == "user" else "assistant", m.body)
        for m in earlier
        if m.role in ("user", "assistant") and m.body
    ]
    return Prompt(agent, bounded_history(turns, window), user_message.body)
