"""The one wait for state that another task, thread or process changes (rows, stand-in logs,
audio heard): ask again until the answer is there, or fail naming what never came."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = ...
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T | None], *, within: float, what: str, interval: float = ...
) -> T: ...


async def eventually(
    probe: Callable[[], object], *, within: float, what: str, interval: float = 0.1
) -> object:
    """`probe()` (sync or async) every `interval` s until it is truthy, and return that value.

    Raises TimeoutError naming `what` once `within` s have passed without it.
    """
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)
