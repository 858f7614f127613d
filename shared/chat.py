"""The text-chat pipeline used by SMS and the TwiML voice loop.

One function: agent + conversation history + new user text -> streamed reply text, through
an OpenAI-compatible chat completions API. The `openai` SDK retries retryable failures
(connection errors, 429, 5xx) before the stream starts; a whole reply has one deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Literal

import openai
from openai.types.chat import ChatCompletionMessageParam

from shared.errors import ProviderError
from shared.models import Agent
from shared.settings import Settings

logger = logging.getLogger("shared.chat")

Medium = Literal["sms", "voice"]
MAX_HISTORY_MESSAGES = 20
MAX_HISTORY_CHARS = 12_000

_MEDIUM_RULES = {
    "sms": "You are replying by text message: plain text, no markdown, at most 320 characters.",
    "voice": (
        "Your words are spoken to a caller on the phone: one to three short sentences, "
        "no lists, no markdown, no emoji, no URLs."
    ),
}


@dataclass(frozen=True)
class ChatTurn:
    role: Literal["user", "assistant"]
    text: str


class ChatFailed(ProviderError):
    """The model gave no usable reply (after the SDK's retries, or past the deadline)."""


def system_prompt(agent: Agent, medium: Medium) -> str:
    instructions = agent.instructions.strip() or "You are a helpful customer-support agent."
    return (
        f"{instructions}\n\n{_MEDIUM_RULES[medium]}\n"
        f"Your default language is {agent.language}; if the customer writes or speaks in "
        "another language, answer in theirs."
    )


def bounded_history(history: Sequence[ChatTurn]) -> list[ChatTurn]:
    """The most recent turns that fit both the message and the character budget."""
    kept: list[ChatTurn] = []
    chars = 0
    for turn in reversed(history[-MAX_HISTORY_MESSAGES:]):
        chars += len(turn.text)
        if chars > MAX_HISTORY_CHARS:
            break
        kept.append(turn)
    kept.reverse()
    return kept


class TextChat:
    """The one client for chat completions, built from Settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client = openai.AsyncOpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key or "not-configured",
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream_reply(
        self, agent: Agent, history: Sequence[ChatTurn], user_text: str, *, medium: Medium
    ) -> AsyncIterator[str]:
        """Yield the reply as it streams; raise ChatFailed when the model fails."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system_prompt(agent, medium)}
        ]
        for turn in bounded_history(history):
            if turn.role == "user":
                messages.append({"role": "user", "content": turn.text})
            else:
                messages.append({"role": "assistant", "content": turn.text})
        messages.append({"role": "user", "content": user_text})
        model = agent.chat_model or self._settings.openai_chat_model
        try:
            stream = await self._client.chat.completions.create(
                model=model,
                messages=messages,
                stream=True,
                max_tokens=300 if medium == "voice" else 400,
                temperature=0.4,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.APIStatusError as exc:
            retryable = exc.status_code == 429 or exc.status_code >= 500
            raise ChatFailed(
                f"chat model returned {exc.status_code}", retryable=retryable,
                status=exc.status_code,
            ) from exc  # fmt: skip
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise ChatFailed(f"chat model unreachable: {exc!r}", retryable=True) from exc

    async def reply(
        self,
        agent: Agent,
        history: Sequence[ChatTurn],
        user_text: str,
        *,
        medium: Medium,
        deadline_seconds: float | None = None,
    ) -> str:
        """The whole reply text, within the deadline; ChatFailed when there is none."""
        parts: list[str] = []
        deadline = deadline_seconds or self._settings.openai_timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                async for part in self.stream_reply(agent, history, user_text, medium=medium):
                    parts.append(part)
        except TimeoutError as exc:
            message = f"chat model gave no reply within {deadline}s"
            raise ChatFailed(message, retryable=True) from exc
        text = "".join(parts).strip()
        if not text:
            raise ChatFailed("chat model returned an empty reply", retryable=True)
        return text
