"""The console's live feed: one Postgres LISTEN connection per gateway process, fanned out
to the browsers watching a workspace.

Writers notify `console_events` from triggers (migration 0005) in their own transactions, so
a page hears of a turn, a charge or a call's status once it is committed, and nothing polls a
table. Each subscriber has a small bounded queue: a browser that does not keep up is dropped
(its stream ends and EventSource reconnects, re-reading the page) and never slows the others
or the listener. The connection opens with the first subscriber; when it is lost, it is
opened again and every subscriber is told to re-read (notifications in between are gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg

from shared.db import resolve_dsn
from shared.settings import Settings

logger = logging.getLogger("webhook_gateway.console")

CHANNEL = "console_events"
QUEUE_SIZE = 64  # events a browser may lag behind before it is dropped
# Open console streams one gateway process keeps: each is a request in flight to Fly's proxy
# (fly.toml's hard_limit 400), most of which Twilio's webhooks must keep.
MAX_SUBSCRIBERS = 100
_MAX_PAYLOAD = 1000  # our triggers send ~150 bytes
# See migration 0005; console pages and their scripts filter on these names.
_KINDS = frozenset({"message", "conversation", "call", "recording", "charge", "workspace"})
_CHECK_SECONDS = 30.0  # a silently dead connection is found by this ping
_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class LiveEvent:
    kind: str  # one of _KINDS, or "resync": re-read everything
    conversation: UUID | None

    def as_json(self) -> str:
        conversation = str(self.conversation) if self.conversation else None
        return json.dumps({"kind": self.kind, "conversation": conversation})


RESYNC = LiveEvent("resync", None)


@dataclass(eq=False)
class Subscription:
    workspace_id: UUID
    queue: asyncio.Queue[LiveEvent | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE)
    )
    dropped: bool = False

    async def next(self) -> LiveEvent | None:
        """The next event; None once dropped (the stream ends)."""
        return await self.queue.get()

    def offer(self, event: LiveEvent) -> bool:
        """Queue `event`; a full queue drops the subscriber (False) instead of waiting."""
        if self.dropped:
            return False
        try:
            self.queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.end()
            return False

    def end(self) -> None:
        """Drop what is queued and wake the stream, which ends."""
        self.dropped = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


def parse_payload(payload: str) -> tuple[UUID, LiveEvent] | None:
    """The workspace and event of a notification, or None for anything malformed."""
    if len(payload) > _MAX_PAYLOAD:
        return None
    try:
        data = json.loads(payload)
        kind = data["kind"]
        workspace = UUID(data["workspace"])
        conversation = UUID(data["conversation"]) if data.get("conversation") else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if kind not in _KINDS:
        return None
    return workspace, LiveEvent(kind, conversation)


def _set_when_closed(event: asyncio.Event, _conn: object) -> None:
    event.set()


class LiveEvents:
    """The process's one listener and its subscribers, by workspace."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._subscribers: dict[UUID, set[Subscription]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return self._count

    @contextlib.asynccontextmanager
    async def subscribe(
        self, workspace_id: UUID, *, ready_within: float = 10.0
    ) -> AsyncIterator[Subscription]:
        """A subscription to the workspace's events, listening before it is yielded (so a
        page that re-reads on "ready" misses nothing committed after that)."""
        if self._count >= MAX_SUBSCRIBERS:
            raise OverflowError("too many console streams on this process")
        if self._closed:
            raise RuntimeError("the live feed is closed")
        subscription = Subscription(workspace_id)
        self._subscribers.setdefault(workspace_id, set()).add(subscription)
        self._count += 1
        try:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._listen_forever(), name="console-listener")
            async with asyncio.timeout(ready_within):
                await self._listening.wait()
            yield subscription
        finally:
            self._count -= 1
            of_workspace = self._subscribers.get(workspace_id)
            if of_workspace is not None:
                of_workspace.discard(subscription)
                if not of_workspace:
                    del self._subscribers[workspace_id]

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        parsed = parse_payload(payload) if isinstance(payload, str) else None
        if parsed is None:
            logger.warning("console.bad_notification", extra={"payload": str(payload)[:200]})
            return
        workspace_id, event = parsed
        for subscription in list(self._subscribers.get(workspace_id, ())):
            if not subscription.offer(event):
                logger.info(
                    "console.slow_subscriber_dropped", extra={"workspace_id": str(workspace_id)}
                )

    def _broadcast(self, event: LiveEvent) -> None:
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.offer(event)

    async def _listen_forever(self) -> None:
        attempt = 0
        first = True
        while not self._closed:
            try:
                conn = await asyncpg.connect(await resolve_dsn(self._settings), timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                attempt += 1
                logger.warning(
                    "console.listener_unavailable", extra={"error": repr(exc), "retry_in": delay}
                )
                await asyncio.sleep(delay)
                continue
            lost = asyncio.Event()
            conn.add_termination_listener(functools.partial(_set_when_closed, lost))
            try:
                await conn.add_listener(CHANNEL, self._notified)
                attempt = 0
                self._listening.set()
                if not first:
                    self._broadcast(RESYNC)  # what was sent while we were away is gone
                first = False
                logger.info("console.listening")
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), _CHECK_SECONDS)
                    if not lost.is_set():
                        await conn.fetchval("select 1", timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                logger.warning("console.listener_lost", extra={"error": repr(exc)})
            finally:
                self._listening.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    async def aclose(self) -> None:
        """Stop listening; open streams end (their browsers reconnect to another process)."""
        self._closed = True
        for subscriptions in list(self._subscribers.values()):
            for subscription in list(subscriptions):
                subscription.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
