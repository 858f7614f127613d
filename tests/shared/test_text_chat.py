import asyncpg

from shared import conversations, text_chat
from shared.providers.chat import ChatTurn
from tests.support import factories


async def test_prompt_is_the_window_of_turns_before_the_users_message(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        ws = await factories.workspace(conn)
        agent = await factories.agent(conn, ws.id)
        conversation_id = await conversations.open_conversation(
            conn, workspace_id=ws.id, kind="sms", channel_id=None, contact_number=None,
            agent_id=agent.id,
        )  # fmt: skip
        for i in range(5):
            await conversations.add_message(
                conn, conversation_id, direction="inbound", role="user", body=f"q{i}"
            )
            await conversations.add_message(
                conn, conversation_id, direction="outbound", role="assistant", body=f"a{i}"
            )
        await conversations.add_message(
            conn, conversation_id, direction="outbound", role="assistant", body=""
        )
        said = await conversations.add_message(
            conn, conversation_id, direction="inbound", role="user", body="the question"
        )
        # Stored after the question (a later turn, or another instance's reply): not history.
        await conversations.add_message(
            conn, conversation_id, direction="outbound", role="assistant", body="later"
        )
        prompt = await text_chat.prompt_for(conn, agent, said, window=4)
    assert prompt.agent == agent and prompt.user_text == "the question"
    # The window counts stored messages: the empty one is in it but never sent.
    assert prompt.history == [
        ChatTurn("assistant", "a3"),
        ChatTurn("user", "q4"),
        ChatTurn("assistant", "a4"),
    ]
