"""The one retry loop: provider calls and short idempotent database writes, on tenacity.

A caller states its policy where it calls: the delays between attempts (so len(delays) + 1
attempts in all), which failures may be tried again, and what to do before each retry (log,
record the retry). Anything else, and anything not an Exception (cancellation), propagates
at once, unchanged; the last failure propagates unchanged when the attempts run out.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from shared.errors import ProviderError

T = TypeVar("T")

# (the failure, the number of the attempt that failed from 1, the seconds before the next)
BeforeRetry = Callable[[Exception, int, float], Awaitable[None] | None]


def provider_retryable(exc: Exception) -> bool:
    """The usual rule: a provider failure that says the same request may be tried again."""
    return isinstance(exc, ProviderError) and exc.retryable


async def call_with_retries(
    fn: Callable[[], Awaitable[T]],
    *,
    delays: Sequence[float],
    retry_if: Callable[[Exception], bool] = provider_retryable,
    wait_for: Callable[[Exception, float], float] | None = None,
    before_retry: BeforeRetry | None = None,
) -> T:
    """`fn()`'s result, calling it again after `delays[i]` seconds while `retry_if` allows.

    `wait_for(failure, planned)` may change a delay (a server's Retry-After); `before_retry`
    runs before each wait and may be async."""
    planned = tuple(delays)
    try:
        # Bare first: nearly every call succeeds at once, and tenacity's bookkeeping would cost
        # a fair share of a hot-path call's own client CPU.
        return await fn()
    except Exception as exc:
        if not planned or not retry_if(exc):
            raise
        replay: list[Exception] = [exc]

    async def attempt_fn() -> T:
        if replay:
            raise replay.pop()  # tenacity sees the first failure as its attempt 1
        return await fn()

    def wait(state: RetryCallState) -> float:
        # tenacity asks before it checks the attempt limit: past the last delay, none is slept.
        if state.attempt_number > len(planned):
            return 0.0
        delay = planned[state.attempt_number - 1]
        return delay if wait_for is None else wait_for(_failure(state), delay)

    async def before_sleep(state: RetryCallState) -> None:
        if before_retry is not None:
            done = before_retry(_failure(state), state.attempt_number, state.upcoming_sleep)
            if inspect.isawaitable(done):
                await done

    retrying = AsyncRetrying(
        stop=stop_after_attempt(len(planned) + 1),
        wait=wait,
        retry=retry_if_exception(lambda exc: isinstance(exc, Exception) and retry_if(exc)),
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            result = await attempt_fn()
    return result


def _failure(state: RetryCallState) -> Exception:
    exc = state.outcome.exception() if state.outcome is not None else None
    assert isinstance(exc, Exception)  # only Exceptions are retried
    return exc
