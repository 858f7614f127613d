"""What the gateway holds for its lifetime: settings, the pool, clients, background tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from shared.chat import TextChat
from shared.db import Pool
from shared.recordings import RecordingStore
from shared.settings import Settings
from webhook_gateway.twilio_rest import TwilioRest

logger = logging.getLogger("webhook_gateway")

StartHook = Callable[["GatewayState"], Awaitable[None]]


@dataclass
class GatewayState:
    settings: Settings
    pool: Pool
    recordings: RecordingStore
    chat: TextChat
    # None when TWILIO_ACCOUNT_SID is unset (dev without an account): nothing can be sent.
    twilio: TwilioRest | None
    # Hooks run at start-up after the pool opens (e.g. resume work a restart interrupted).
    start_hooks: list[StartHook] = field(default_factory=list)
    # Hooks run at shutdown before the pool closes (e.g. close HTTP clients).
    close_hooks: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run work after the response; keep a reference so it is awaited at shutdown."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "gateway.task_failed", exc_info=task.exception(), extra={"task": task.get_name()}
            )

    async def start(self) -> None:
        for hook in self.start_hooks:
            await hook(self)

    async def drain(self, wait_seconds: float = 10.0) -> None:
        """Wait for background work (replies being sent) before shutting down."""
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=wait_seconds)

    async def aclose(self) -> None:
        await self.drain()
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
        for hook in self.close_hooks:
            await hook()
        await self.chat.aclose()
        if self.twilio is not None:
            await self.twilio.aclose()
