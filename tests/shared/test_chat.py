from collections.abc import AsyncIterator
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from shared.models import Agent
from shared.providers.chat import ChatBadOutput, ChatFailed, ChatTurn, TextChat
from shared.settings import Settings
from shared.text_chat import bounded_history
from shared.text_safety import xml_safe
from tests.standins.openai_api import ChatScript, OpenAIStandIn


@pytest.fixture
async def chat(settings: Settings, openai_standin: OpenAIStandIn) -> AsyncIterator[TextChat]:
    client = TextChat(settings)
    yield client
    await client.aclose()


def _agent(**overrides: object) -> Agent:
    fields: dict[str, object] = {
        "id": uuid4(), "workspace_id": uuid4(), "name": "Sara", "instructions": "You sell tea.",
        "greeting": "Hi", "modality": "text_voice", "language": "ar-SA", "voice": None,
        "chat_model": None, "active": True, "max_call_seconds": 600, "handoff_number": None,
        "created_at": datetime.now(UTC),
    }  # fmt: skip
    fields.update(overrides)
    return Agent(**fields)  # type: ignore[arg-type]


async def test_reply_streams_with_instructions_language_and_history(
    chat: TextChat, openai_standin: OpenAIStandIn
) -> None:
    openai_standin.script_chat("أهلاً! كيف أساعدك؟ 🌟")
    history = [ChatTurn("user", "hello"), ChatTurn("assistant", "hi!")]
    parts = [p async for p in chat.stream_reply(_agent(), history, "مرحبا", medium="sms")]
    assert "".join(parts) == "أهلاً! كيف أساعدك؟ 🌟" and len(parts) > 1
    sent = openai_standin.chat_requests[-1]["body"]
    assert sent["stream"] is True and sent["model"] == "gpt-4o-mini"
    assert sent["messages"][0]["role"] == "system"
    assert "You sell tea." in sent["messages"][0]["content"]
    assert "ar-SA" in sent["messages"][0]["content"]
    assert [m["content"] for m in sent["messages"][1:]] == ["hello", "hi!", "مرحبا"]
    assert openai_standin.chat_requests[-1]["auth"] == "Bearer test-openai-key"


async def test_agent_model_overrides_settings(
    chat: TextChat, openai_standin: OpenAIStandIn
) -> None:
    await chat.reply(_agent(chat_model="my-model"), [], "hi", medium="voice")
    assert openai_standin.chat_requests[-1]["body"]["model"] == "my-model"


async def test_retryable_failure_is_retried(chat: TextChat, openai_standin: OpenAIStandIn) -> None:
    openai_standin.script_chat(ChatScript("", status=503), "Recovered")
    assert await chat.reply(_agent(), [], "hi", medium="sms") == "Recovered"
    assert len(openai_standin.chat_requests) == 2


async def test_final_failure_is_a_clear_outcome(
    chat: TextChat, openai_standin: OpenAIStandIn
) -> None:
    openai_standin.script_chat(ChatScript("", status=400))
    with pytest.raises(ChatFailed) as err:
        await chat.reply(_agent(), [], "hi", medium="sms")
    assert err.value.retryable is False and err.value.status == 400
    assert len(openai_standin.chat_requests) == 1


async def test_slow_model_hits_the_deadline(chat: TextChat, openai_standin: OpenAIStandIn) -> None:
    openai_standin.script_chat(ChatScript("late", first_token_delay=1.0))
    with pytest.raises(ChatFailed, match="within"):
        await chat.reply(_agent(), [], "hi", medium="voice", deadline_seconds=0.2)


def test_history_is_bounded_to_recent_turns() -> None:
    history = [ChatTurn("user", f"m{i}") for i in range(50)]
    kept = bounded_history(history)
    assert len(kept) == 20 and kept[-1].text == "m49"
    long = [ChatTurn("user", "x" * 5000) for _ in range(5)]
    assert len(bounded_history(long)) == 2


async def test_stream_cut_off_before_its_end_is_no_reply(
    chat: TextChat, openai_standin: OpenAIStandIn
) -> None:
    # Neither a finish_reason nor [DONE]: the text so far is half a reply, not a short one.
    openai_standin.script_chat(ChatScript("Thanks for your message. We will", ending="cut"))
    with pytest.raises(ChatBadOutput, match="ended before"):
        await chat.reply(_agent(), [], "hi", medium="sms")


async def test_error_event_mid_stream_is_no_reply(
    chat: TextChat, openai_standin: OpenAIStandIn
) -> None:
    openai_standin.script_chat(ChatScript("Thanks for your message. We will", ending="error"))
    with pytest.raises(ChatBadOutput, match="mid-stream"):
        await chat.reply(_agent(), [], "hi", medium="sms")


async def test_characters_xml_forbids_are_stripped_from_the_reply(
    chat: TextChat, openai_standin: OpenAIStandIn
) -> None:
    openai_standin.script_chat("Your\x01 order\x0b shipped\x1f today\x00 ✓ 🌟")
    assert await chat.reply(_agent(), [], "hi", medium="sms") == "Your order shipped today ✓ 🌟"
    openai_standin.script_chat("\x01\x02")  # nothing left to say is no reply
    with pytest.raises(ChatBadOutput, match="empty"):
        await chat.reply(_agent(), [], "hi", medium="sms")


def test_xml_safe_keeps_what_xml_allows_and_drops_the_rest() -> None:
    allowed = "\t\n\r a\x7f\u00e9\ud7ff\ue000\ufffd\U00010000\U0010ffff"
    assert xml_safe(allowed) == allowed
    forbidden = "\x00\x08\x0b\x0c\x1f\ud800\udfff\ufffe\uffff"
    assert xml_safe(f"a{forbidden}b") == "ab"
