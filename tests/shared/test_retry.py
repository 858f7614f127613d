"""The one retry loop, and which database errors count as an outage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from shared import db
from shared.errors import ProviderConnectionError, ProviderStatusError, ProviderTimeoutError
from shared.pg import UNAVAILABLE_ERRORS, DatabaseUnreachable, is_outage
from shared.providers.retry import call_with_retries
from shared.settings import Settings


class Flaky:
    """Fails with the given errors in turn, then answers "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def test_retries_what_may_be_retried_with_the_given_delays() -> None:
    flaky = Flaky(ProviderConnectionError("down"), ProviderStatusError("busy", status=503,
                  retryable=True))  # fmt: skip
    seen: list[tuple[str, int, float]] = []
    result = await call_with_retries(
        flaky, delays=(0.01, 0.02), before_retry=lambda e, n, d: seen.append((str(e), n, d))
    )
    assert (result, flaky.calls) == ("ok", 3)
    assert seen == [("down", 1, 0.01), ("busy", 2, 0.02)]


async def test_the_last_failure_propagates_when_the_attempts_run_out() -> None:
    last = ProviderTimeoutError("late")
    flaky = Flaky(ProviderConnectionError("a"), ProviderConnectionError("b"), last)
    with pytest.raises(ProviderTimeoutError) as err:
        await call_with_retries(flaky, delays=(0, 0))
    assert err.value is last and flaky.calls == 3


async def test_a_final_failure_is_not_retried_and_cancellation_never_is() -> None:
    final = Flaky(ProviderStatusError("bad request", status=400, retryable=False))
    with pytest.raises(ProviderStatusError):
        await call_with_retries(final, delays=(0, 0))
    cancelled = Flaky(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await call_with_retries(cancelled, delays=(0, 0), retry_if=lambda _: True)
    assert (final.calls, cancelled.calls) == (1, 1)


async def test_wait_for_replaces_a_planned_delay() -> None:
    flaky = Flaky(ProviderStatusError("slow down", status=429, retryable=True, retry_after=0))
    delays: list[float] = []
    await call_with_retries(
        flaky,
        delays=(30.0,),
        wait_for=lambda exc, planned: 0.0 if isinstance(exc, ProviderStatusError) else planned,
        before_retry=lambda _e, _n, delay: delays.append(delay),
    )
    assert delays == [0.0]


def test_bad_query_arguments_are_bugs_not_outages() -> None:
    assert not is_outage(asyncpg.exceptions.DataError("invalid input"))
    assert not is_outage(asyncpg.exceptions.ClientConfigurationError("bad option"))
    assert not isinstance(FileNotFoundError("a recording file"), UNAVAILABLE_ERRORS)
    assert isinstance(ConnectionRefusedError(), UNAVAILABLE_ERRORS)
    assert isinstance(asyncpg.exceptions.CannotConnectNowError("starting"), UNAVAILABLE_ERRORS)


async def test_any_socket_failure_opening_the_pool_is_an_outage(tmp_path: Path) -> None:
    # A Unix socket that is not there (the embedded server mid-restart): FileNotFoundError.
    settings = Settings(database_url=f"postgresql://postgres@/postgres?host={tmp_path}&port=5432")
    with pytest.raises(DatabaseUnreachable) as err:
        await db.create_pool(settings, require_current_schema=False)
    assert isinstance(err.value, UNAVAILABLE_ERRORS)
    assert isinstance(err.value.__cause__, FileNotFoundError)


async def test_a_connection_the_server_closes_under_a_transaction_is_an_outage(
    pg_dsn: str,
) -> None:
    # What a Postgres restart does to a request holding a connection (the soak saw 500s).
    other = await asyncpg.connect(pg_dsn)
    conn = await asyncpg.connect(pg_dsn)
    try:
        with pytest.raises(Exception) as err:
            async with conn.transaction():
                await other.execute("select pg_terminate_backend($1)", conn.get_server_pid())
                await conn.execute("select 1")
        assert is_outage(err.value), repr(err.value)
    finally:
        await other.close()
        await conn.close()
