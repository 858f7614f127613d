import asyncio
from collections.abc import Sequence

import pytest

from shared.group_commit import GroupCommit


class Recorder:
    """A batch function that records its batches and can be held mid-batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.started = asyncio.Event()

    async def run(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        if any(item == "bad" for item in items):
            raise ValueError("bad item")
        if any(item == "down" for item in items):
            raise ConnectionRefusedError("database down")
        return [item.upper() for item in items]


async def _hold_first_batch(recorder: Recorder, commit: GroupCommit[str, str]) -> asyncio.Task[str]:
    recorder.release.clear()
    first = asyncio.create_task(commit.submit("first"))
    await recorder.started.wait()
    return first


async def test_a_lone_item_goes_at_once_and_items_arriving_meanwhile_go_together() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run)
    first = await _hold_first_batch(recorder, commit)
    later = [asyncio.create_task(commit.submit(x)) for x in ("a", "b", "c")]
    await asyncio.sleep(0.01)
    assert recorder.batches == [["first"]]  # the others wait for the batch in flight
    recorder.release.set()
    assert await asyncio.gather(first, *later) == ["FIRST", "A", "B", "C"]
    assert recorder.batches == [["first"], ["a", "b", "c"]]


async def test_batches_are_capped_and_run_concurrently_up_to_the_limit() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run, max_batch=2, max_in_flight=2)
    recorder.release.clear()
    tasks = [asyncio.create_task(commit.submit(x)) for x in "abcde"]
    await asyncio.sleep(0.01)
    assert recorder.batches == [["a", "b"], ["c", "d"]]  # two in flight, "e" waits
    recorder.release.set()
    assert await asyncio.gather(*tasks) == list("ABCDE")
    assert recorder.batches == [["a", "b"], ["c", "d"], ["e"]]


async def _one_batch_after_first(recorder: Recorder, items: tuple[str, ...]) -> list[object]:
    """Submit `items` while a first batch is held, so they go in one batch together."""
    commit = GroupCommit(recorder.run)
    first = await _hold_first_batch(recorder, commit)
    later = [asyncio.create_task(commit.submit(x)) for x in items]
    await asyncio.sleep(0)
    recorder.release.set()
    return await asyncio.gather(first, *later, return_exceptions=True)


async def test_a_failed_batch_is_retried_singly_so_only_the_bad_item_fails() -> None:
    recorder = Recorder()
    results = await _one_batch_after_first(recorder, ("ok1", "bad", "ok2"))
    assert results[:2] == ["FIRST", "OK1"] and results[3] == "OK2"
    assert isinstance(results[2], ValueError)
    assert recorder.batches == [["first"], ["ok1", "bad", "ok2"], ["ok1"], ["bad"], ["ok2"]]


async def test_an_unreachable_database_fails_every_waiting_caller_without_retries() -> None:
    recorder = Recorder()
    results = await _one_batch_after_first(recorder, ("a", "down", "b"))
    assert results[0] == "FIRST"
    assert all(isinstance(r, ConnectionRefusedError) for r in results[1:])
    assert recorder.batches == [["first"], ["a", "down", "b"]]


async def test_a_caller_that_goes_away_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run)
    first = await _hold_first_batch(recorder, commit)
    gone = asyncio.create_task(commit.submit("gone"))
    stays = asyncio.create_task(commit.submit("stays"))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.release.set()
    assert await first == "FIRST" and await stays == "STAYS"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert recorder.batches == [["first"], ["gone", "stays"]]  # its item was still written


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Recorder().run, max_batch=0)


async def test_a_stalled_batch_lets_another_start_beside_it() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run, stalled_after_seconds=0.05, max_stalled=1)
    first = await _hold_first_batch(recorder, commit)
    early = asyncio.create_task(commit.submit("early"))
    await asyncio.sleep(0.01)
    assert recorder.batches == [["first"]]  # not stalled yet: "early" waits
    await asyncio.sleep(0.1)
    late = asyncio.create_task(commit.submit("late"))
    await asyncio.sleep(0.01)
    assert recorder.batches == [["first"], ["early", "late"]]  # beside the stalled one
    also = asyncio.create_task(commit.submit("also"))
    await asyncio.sleep(0.01)
    assert len(recorder.batches) == 2  # at most one more beside it
    recorder.release.set()
    assert await asyncio.gather(first, early, late, also) == ["FIRST", "EARLY", "LATE", "ALSO"]
