"""A caller who went quiet: "are you still there?", then goodbye and the end of the call.

The framework marks the caller `away` once caller and agent have both been silent for the
session's `user_away_timeout` (we set it to the prompt delay); any speech, transcript or
keypad press brings them back. Away, the agent asks once; still away `goodbye_seconds`
after that question has played, it says goodbye and ends the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from livekit.agents import AgentSession, UserStateChangedEvent
from livekit.agents.voice import SpeechHandle

logger = logging.getLogger("worker.idle")


class IdleWatch:
    """Watches one session's caller state; asks, then ends the call, while they stay away."""

    def __init__(
        self,
        session: AgentSession[Any],
        *,
        goodbye_seconds: float,
        prompt: Callable[[], SpeechHandle | None],
        goodbye: Callable[[], Awaitable[None]],
        log_extra: dict[str, str],
    ) -> None:
        self._session = session
        self._goodbye_seconds = goodbye_seconds
        self._prompt = prompt
        self._goodbye = goodbye
        self._log_extra = log_extra
        self._task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._ending = False
        session.on("user_state_changed", self._on_user_state)

    def _on_user_state(self, event: UserStateChangedEvent) -> None:
        if event.new_state == "away":
            self._start()
        elif event.old_state == "away" and not self._ending:
            self._cancel()  # the caller spoke or pressed a key

    def _start(self) -> None:
        self._retry = None
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._ask_then_end(), name="idle_caller")

    def _retry_if_away(self) -> None:
        if self._session.user_state == "away" and not self._ending:
            self._start()

    async def _ask_then_end(self) -> None:
        question = self._prompt()
        if question is None:
            # A hand-off is under way (a caller on hold is silent, not gone): ask later, if
            # the caller is back with the agent and still silent.
            loop = asyncio.get_running_loop()
            self._retry = loop.call_later(self._goodbye_seconds, self._retry_if_away)
            return
        logger.info("call.idle_prompt", extra=self._log_extra)
        await question
        await asyncio.sleep(self._goodbye_seconds)
        self._ending = True
        logger.info("call.idle_goodbye", extra=self._log_extra)
        await self._goodbye()

    def _cancel(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def aclose(self) -> None:
        self._session.off("user_state_changed", self._on_user_state)
        if self._retry is not None:
            self._retry.cancel()
        if self._task is not None and not self._ending:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
