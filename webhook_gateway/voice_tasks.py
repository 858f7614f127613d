"""Generations under way in this gateway process (replies, hand-off briefings), one per
(CallSid, turn), so a Twilio retry or a collect joins the one already running."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from shared.services import Services

ReplyKey = tuple[str, int]  # (CallSid, turn)


class ReplyTasks:
    """Reply generations under way in this process, one per (CallSid, turn).

    A finished reply is in Postgres, so its task is dropped; a failed one (None) is kept until
    the call ends, so a collect tells "failed" apart from "never started here".
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._tasks: dict[ReplyKey, asyncio.Task[str | None]] = {}

    def get(self, key: ReplyKey) -> asyncio.Task[str | None] | None:
        return self._tasks.get(key)

    def get_or_start(
        self, key: ReplyKey, coro: Coroutine[Any, Any, str | None]
    ) -> asyncio.Task[str | None]:
        task = self._tasks.get(key)
        if task is not None:
            coro.close()  # not needed: the turn is already being answered
            return task
        task = self._services.spawn(coro, name=f"voice.reply:{key[0]}:{key[1]}")
        self._tasks[key] = task

        def forget(done: asyncio.Task[str | None]) -> None:
            if not done.cancelled() and done.exception() is None and done.result() is not None:
                self._tasks.pop(key, None)

        task.add_done_callback(forget)
        return task

    def forget_call(self, call_sid: str) -> None:
        for key in [k for k in self._tasks if k[0] == call_sid]:
            if self._tasks[key].done():
                del self._tasks[key]

    def __len__(self) -> int:
        return len(self._tasks)
