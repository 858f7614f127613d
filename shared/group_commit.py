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
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """The item's result, once the batch it went in has committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._queue:
                size = min(self._max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(size)]
                await self._run_batch(batch)
                batch = []
        except BaseException as exc:  # cancelled at shutdown: nobody may wait forever
            for _, future in [*batch, *self._queue]:
                _fail(future, exc)
            self._queue.clear()
            raise
        finally:
            self._in_flight -= 1

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
