"""What a serving process holds for its lifetime: settings, the pool, provider clients and the
background work it started after answering (replies, recording fetches)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from shared.db import Pool, create_pool
from shared.providers.chat import TextChat
from shared.providers.recording_store import RecordingStore, build_store
from shared.providers.twilio_rest import TwilioRest
from shared.settings import Settings

logger = logging.getLogger("shared.services")


@dataclass
class Services:
    settings: Settings
    pool: Pool
    recordings: RecordingStore
    chat: TextChat
    # None when TWILIO_ACCOUNT_SID is unset (dev without an account): nothing can be sent.
    twilio: TwilioRest | None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        """The pool and every client the settings configure."""
        pool = await create_pool(settings)
        return cls(
            settings=settings,
            pool=pool,
            recordings=build_store(settings),
            chat=TextChat(settings),
            twilio=TwilioRest(settings) if settings.twilio.account_sid else None,
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run work after the response; keep a reference so it is awaited at shutdown."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task_failed", exc_info=task.exception(), extra={"task": task.get_name()})

    async def drain(self, wait_seconds: float = 10.0) -> None:
        """Wait for background work (replies being sent) before shutting down."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=wait_seconds)

    async def aclose(self) -> None:
        """Drain, cancel what is left, close the clients and then the pool."""
        await self.drain()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.chat.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()
        await self.pool.close()
