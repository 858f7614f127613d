"""The text-chat pipeline used by SMS and the TwiML voice loop.

One function: agent + conversation history + new user text -> streamed reply text (the
prompt is built by shared/text_chat.py), through an OpenAI-compatible chat completions API
(`POST {OPENAI_BASE_URL}/chat/completions` with `stream: true`, read as server-sent events).
Retryable failures (connection errors, 429, 5xx) are retried before the stream starts; a
whole reply has one deadline.

A plain aiohttp client rather than the `openai` SDK or httpx: every SMS reply and TwiML voice
turn passes here, and aiohttp reads the stream for the least CPU (figures: bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from shared.errors import ProviderError
from shared.models import Agent
from shared.settings import Settings

logger = logging.getLogger("shared.providers.chat")

Medium = Literal["sms", "voice"]

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


_RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_MAX_BACKOFF_SECONDS = 4.0


class TextChat:
    """The one client for chat completions, built from Settings."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._url = settings.openai_base_url.rstrip("/") + "/chat/completions"
        self._max_retries = settings.openai_max_retries
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=5.0, sock_read=settings.openai_timeout_seconds
            ),
            headers={
                "Authorization": f"Bearer {settings.openai_api_key or 'not-configured'}",
                "User-Agent": "wassla-voice",
            },
        )

    async def aclose(self) -> None:
        await self._http.close()

    async def stream_reply(
        self, agent: Agent, history: Sequence[ChatTurn], user_text: str, *, medium: Medium
    ) -> AsyncIterator[str]:
        """Yield the reply as it streams; raise ChatFailed when the model fails."""
        messages = [{"role": "system", "content": system_prompt(agent, medium)}]
        messages += [{"role": t.role, "content": t.text} for t in history]
        messages.append({"role": "user", "content": user_text})
        payload = {
            "model": agent.chat_model or self._settings.openai_chat_model,
            "messages": messages,
            "stream": True,
            "max_tokens": 300 if medium == "voice" else 400,
            "temperature": 0.4,
        }
        try:
            async with self._open_stream(payload) as response:
                done = False
                # Read to the end even after [DONE], so the connection goes back to the pool.
                async for line in response.content:
                    text = None if done else _delta_text(line.decode("utf-8", "replace"))
                    if text is None:
                        done = True
                    elif text:
                        yield text
        except TimeoutError as exc:
            raise ChatFailed(f"chat model timed out: {exc!r}", retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise ChatFailed(f"chat model unreachable: {exc!r}", retryable=True) from exc

    @contextlib.asynccontextmanager
    async def _open_stream(self, payload: dict[str, Any]) -> AsyncIterator[aiohttp.ClientResponse]:
        """The streaming response, once the model answered 2xx (retrying what may be)."""
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        for attempt in range(self._max_retries + 1):
            last = attempt == self._max_retries
            try:
                response = await self._http.post(self._url, data=body, headers=headers)
            except (TimeoutError, aiohttp.ClientError):
                if last:
                    raise
                await asyncio.sleep(_backoff(attempt, None))
                continue
            if response.status < 400:
                try:
                    yield response
                finally:
                    response.release()
                return
            await response.read()
            response.release()
            retryable = response.status in _RETRYABLE_STATUS
            if not retryable or last:
                raise ChatFailed(
                    f"chat model returned {response.status}", retryable=retryable,
                    status=response.status,
                )  # fmt: skip
            await asyncio.sleep(_backoff(attempt, response.headers.get("retry-after")))
        raise AssertionError("unreachable")

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


def _backoff(attempt: int, retry_after: str | None) -> float:
    """Seconds before the next attempt: the server's Retry-After when short, else 0.5 s, 1 s..."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), _MAX_BACKOFF_SECONDS)
        except ValueError:
            pass
    return min(0.5 * 2.0**attempt, _MAX_BACKOFF_SECONDS)


def _delta_text(line: str) -> str | None:
    """The text a server-sent event line adds ("" for none), or None at the end of stream."""
    if not line.startswith("data:"):
        return ""  # blank separators, comments, event names
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise ChatFailed(
            f"chat model sent a malformed event: {data[:80]!r}", retryable=False
        ) from exc
    if not isinstance(chunk, dict):
        return ""
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ChatFailed(f"chat model failed mid-stream: {message}", retryable=True)
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""
