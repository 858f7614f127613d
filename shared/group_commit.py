"""Group commit: writes that callers make at the same time go to Postgres together.

A caller submits an item and awaits its result. The first item starts a batch at once, so
an idle service answers as fast as without batching; items submitted while batches are in
flight queue up and go together in the next one. Under load, N callers' round trips and
commits become one, which is where most of a busy webhook's time went.

A failed batch of several is retried one item at a time, so one bad item (or a deadlock
between two batches) fails only its own caller. When the database is unreachable, every
waiting caller gets that error at once instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from shared.pg import UNAVAILABLE_ERRORS

logger = logging.getLogger("shared.group_commit")

T = TypeVar("T")
R = TypeVar("R")

BatchFunction = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    """Runs `run(items)` for items submitted together; `run` returns one result per item,
    in order, and must be atomic per item (a retry of an item must be harmless)."""

    def __init__(
        self,
        run: BatchFunction[T, R],
        *,
        max_batch: int = 64,
        max_in_flight: int = 1,
        stalled_after_seconds: float | None = None,
        max_stalled: int = 3,
    ) -> None:
        """`max_in_flight` batches run at once; with `stalled_after_seconds`, up to
        `max_stalled` more start while every batch in flight has run longer than that (one
        statement waiting on a lock must not hold back every caller)."""
        if max_batch < 1 or max_in_flight < 1 or max_stalled < 0:
            raise ValueError("max_batch and max_in_flight must be at least 1, max_stalled 0")
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._stalled_after = stalled_after_seconds
        self._max_stalled = max_stalled
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        # The drain tasks in flight (held here so none is collected) and when each one's
        # current batch started.
        self._batch_started: dict[asyncio.Task[None], float] = {}

    async def submit(self, item: T) -> R:
        """The item's result, once the batch it went in has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        if self._may_start_batch(loop.time()):
            task = asyncio.create_task(self._drain())
            self._batch_started[task] = loop.time()
            # A task cancelled before it ever ran never reaches _drain's own cleanup.
            task.add_done_callback(lambda done: self._batch_started.pop(done, None))
        return await future

    def _may_start_batch(self, now: float) -> bool:
        in_flight = len(self._batch_started)
        if in_flight < self._max_in_flight:
            return True
        if self._stalled_after is None or in_flight >= self._max_in_flight + self._max_stalled:
            return False
        return all(now - t > self._stalled_after for t in self._batch_started.values())

    async def _drain(self) -> None:
        key = asyncio.current_task()
        assert key is not None
        loop = asyncio.get_running_loop()
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                size = min(self._max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(size)]
                self._batch_started[key] = loop.time()
                await self._run_batch(batch)
                batch = []
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for _, future in [*batch, *self._queue]:
                _fail(future, exc)
            self._queue.clear()
            raise
        finally:
            # At once, not in a done callback: an item queued from here on starts a batch.
            self._batch_started.pop(key, None)

    async def _run_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except UNAVAILABLE_ERRORS as exc:
            for _, future in batch:
                _fail(future, exc)
            return
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0][1], exc)
                return
            logger.warning(
                "group_commit.batch_failed_retrying_singly",
                extra={"size": len(batch), "error": repr(exc)},
            )
            for entry in batch:
                await self._run_batch([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # its caller may have gone (a client that hung up)
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: BaseException) -> None:
    if future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)
