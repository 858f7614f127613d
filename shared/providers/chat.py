"""The text-chat pipeline used by SMS and the TwiML voice loop.

One function: agent + conversation history + new user text -> streamed reply text (the
prompt is built by shared/text_chat.py), through an OpenAI-compatible chat completions API
(`POST {OPENAI_BASE_URL}/chat/completions` with `stream: true`, read as server-sent events).
Retryable failures (connection errors, 429, 5xx) are retried before the stream starts; a
whole reply has one deadline. Every failure is a ChatFailed and, where one fits, also the
ProviderError kind (status, connection, timeout) that says what happened.

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
from typing import Any, Literal, NamedTuple

import aiohttp

from shared.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderStatusError,
    ProviderTimeoutError,
)
from shared.models import Agent
from shared.providers.retry import call_with_retries
from shared.providers.transport import TRANSPORT_ERRORS, never_sent
from shared.settings import Settings
from shared.text_safety import xml_safe

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
    """The model gave no usable reply: callers catch this one class for every chat failure."""


class ChatStatusError(ChatFailed, ProviderStatusError):
    pass


class ChatConnectionError(ChatFailed, ProviderConnectionError):
    pass


class ChatTimeoutError(ChatFailed, ProviderTimeoutError):
    """No whole answer: a read timed out, the connection dropped, or the deadline passed."""


class ChatBadOutput(ChatFailed):
    """The model answered 2xx but not with a reply: a malformed or error event, a stream cut
    short, or no text."""


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
        self._url = settings.openai.base_url.rstrip("/") + "/chat/completions"
        self._delays = [_backoff(attempt) for attempt in range(settings.openai.max_retries)]
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=5.0, sock_read=settings.openai.timeout_seconds
            ),
            headers={
                "Authorization": f"Bearer {settings.openai.api_key or 'not-configured'}",
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
            "model": agent.chat_model or self._settings.openai.chat_model,
            "messages": messages,
            "stream": True,
            "max_tokens": 300 if medium == "voice" else 400,
            "temperature": 0.4,
        }
        async for text in self._stream(payload):
            yield text

    async def complete(
        self,
        messages: Sequence[dict[str, str]],
        *,
        model: str | None,
        max_tokens: int,
        deadline_seconds: float,
    ) -> str:
        """The whole answer to prompt `messages` built by the caller (e.g. a hand-off
        summary), within the deadline; ChatFailed when there is none."""
        payload = {
            "model": model or self._settings.openai.chat_model,
            "messages": list(messages),
            "stream": True,
            "max_tokens": max_tokens,
            "temperature": 0.2,
        }
        parts: list[str] = []
        try:
            async with asyncio.timeout(deadline_seconds):
                async for part in self._stream(payload):
                    parts.append(part)
        except TimeoutError as exc:
            raise ChatTimeoutError(f"chat model gave no answer within {deadline_seconds}s") from exc
        text = xml_safe("".join(parts)).strip()
        if not text:
            raise ChatBadOutput("chat model returned an empty answer", retryable=True)
        return text

    async def _stream(self, payload: dict[str, Any]) -> AsyncIterator[str]:
        """The answer's text as it streams; ChatFailed when the model fails."""
        finished = done = False
        try:
            async with self._open_stream(payload) as response:
                # Read to the end even after [DONE], so the connection goes back to the pool.
                async for line in response.content:
                    if done:
                        continue
                    event = _event(line.decode("utf-8", "replace"))
                    finished = finished or event.finished
                    done = event.done
                    if event.text:
                        yield event.text
        except TRANSPORT_ERRORS as exc:
            raise _transport_error(exc) from exc
        if not finished:
            # A body that just ends (a proxy or the server cut it) holds half a reply at best.
            raise ChatBadOutput(
                "chat model stream ended before a finish_reason or [DONE]", retryable=True
            )

    @contextlib.asynccontextmanager
    async def _open_stream(self, payload: dict[str, Any]) -> AsyncIterator[aiohttp.ClientResponse]:
        """The streaming response, once the model answered 2xx (retrying what may be)."""
        body = json.dumps(payload).encode()
        response = await call_with_retries(
            lambda: self._post(body), delays=self._delays, wait_for=_server_wait
        )
        try:
            yield response
        finally:
            response.release()

    async def _post(self, body: bytes) -> aiohttp.ClientResponse:
        """One attempt: the response if 2xx, else ChatStatusError (its body read, released)."""
        try:
            response = await self._http.post(self._url, data=body, headers=_JSON)
        except TRANSPORT_ERRORS as exc:
            raise _transport_error(exc) from exc
        if response.status < 400:
            return response
        # Unmapped when reading this body fails, so that ends the call without a retry.
        content = await response.read()
        response.release()
        raise ChatStatusError(
            f"chat model returned {response.status}",
            status=response.status,
            retryable=response.status in _RETRYABLE_STATUS,
            body=content[:200].decode("utf-8", "replace"),
            retry_after=_seconds(response.headers.get("retry-after")),
        )

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
        deadline = deadline_seconds or self._settings.openai.timeout_seconds
        try:
            async with asyncio.timeout(deadline):
                async for part in self.stream_reply(agent, history, user_text, medium=medium):
                    parts.append(part)
        except TimeoutError as exc:
            raise ChatTimeoutError(f"chat model gave no reply within {deadline}s") from exc
        # Characters XML forbids would break the TwiML it is spoken in, and NUL the database.
        text = xml_safe("".join(parts)).strip()
        if not text:
            raise ChatBadOutput("chat model returned an empty reply", retryable=True)
        return text


_JSON = {"Content-Type": "application/json"}


def _transport_error(exc: BaseException) -> ChatFailed:
    if never_sent(exc):
        return ChatConnectionError(f"chat model unreachable: {exc!r}")
    return ChatTimeoutError(f"chat model gave no whole answer: {exc!r}")


def _backoff(attempt: int) -> float:
    """Seconds after failed attempt `attempt` + 1: 0.5 s, 1 s, 2 s... up to the cap."""
    return min(0.5 * 2.0**attempt, _MAX_BACKOFF_SECONDS)


def _server_wait(exc: Exception, planned: float) -> float:
    """The server's Retry-After when it sent one in seconds (capped), else the planned delay."""
    if isinstance(exc, ProviderStatusError) and exc.retry_after is not None:
        return min(max(exc.retry_after, 0.0), _MAX_BACKOFF_SECONDS)
    return planned


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        return float(header)
    except ValueError:
        return None  # an HTTP date: the planned delay stands


class _Event(NamedTuple):
    text: str  # what the line adds to the reply, "" for none
    finished: bool = False  # the reply is whole: a finish_reason or [DONE]
    done: bool = False  # [DONE]: nothing after it is read


def _event(line: str) -> _Event:
    """What one server-sent event line of the stream says."""
    if not line.startswith("data:"):
        return _Event("")  # blank separators, comments, event names
    data = line[5:].strip()
    if data == "[DONE]":
        return _Event("", finished=True, done=True)
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise ChatBadOutput(
            f"chat model sent a malformed event: {data[:80]!r}", retryable=False
        ) from exc
    if not isinstance(chunk, dict):
        return _Event("")
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise ChatBadOutput(f"chat model failed mid-stream: {message}", retryable=True)
    choices = chunk.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return _Event("")  # e.g. the usage chunk after the finish_reason
    content = (choices[0].get("delta") or {}).get("content")
    return _Event(
        content if isinstance(content, str) else "",
        finished=choices[0].get("finish_reason") is not None,
    )
