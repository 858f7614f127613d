"""Finals of an utterance the transcription split at a short gap are sent as one
(worker/split_utterances.py); a final that comes while the caller is still silent is not held.

The end-to-end figure (one chat request for a sentence split in two items, through the real
worker) is in tests/worker/test_turn_taking.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st
from livekit.agents import stt
from livekit.agents.language import LanguageCode

from worker.split_utterances import join_resumed_finals

START = stt.SpeechEventType.START_OF_SPEECH
END = stt.SpeechEventType.END_OF_SPEECH
FINAL = stt.SpeechEventType.FINAL_TRANSCRIPT


def event(kind: stt.SpeechEventType, text: str = "") -> stt.SpeechEvent:
    data = stt.SpeechData(language=LanguageCode("en"), text=text, confidence=0.8)
    alternatives = [data] if text else []
    return stt.SpeechEvent(type=kind, alternatives=alternatives)


def final(text: str) -> stt.SpeechEvent:
    return event(FINAL, text)


async def listed(*events: stt.SpeechEvent) -> AsyncIterator[stt.SpeechEvent]:
    for item in events:
        yield item


def described(events: list[stt.SpeechEvent]) -> list[str]:
    return [e.alternatives[0].text if e.type == FINAL else e.type.name for e in events]


async def test_a_final_that_comes_after_the_caller_spoke_again_is_joined_to_the_next() -> None:
    source = listed(
        event(START), event(END), event(START), final("What time do you"),
        event(END), final("open tomorrow?"),
    )  # fmt: skip
    out = [e async for e in join_resumed_finals(source)]
    assert described(out) == [
        "START_OF_SPEECH", "END_OF_SPEECH", "START_OF_SPEECH", "END_OF_SPEECH",
        "What time do you open tomorrow?",
    ]  # fmt: skip
    assert out[-1].alternatives[0].language == "en"


class Feed:
    """A source the test feeds one event at a time, to see what is passed on meanwhile."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[stt.SpeechEvent | None] = asyncio.Queue()
        self.closed = False

    async def events(self) -> AsyncIterator[stt.SpeechEvent]:
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            self.closed = True


async def next_within(out: AsyncIterator[stt.SpeechEvent], seconds: float) -> stt.SpeechEvent:
    return await asyncio.wait_for(anext(out), seconds)


async def test_a_final_that_comes_during_a_pause_is_passed_on_at_once() -> None:
    feed = Feed()
    out = join_resumed_finals(feed.events())
    for item in (event(START), event(END), final("I'd like to book a table for")):
        feed.queue.put_nowait(item)
    assert [(await next_within(out, 1.0)).type for _ in range(3)] == [START, END, FINAL]
    await out.aclose()
    assert feed.closed


async def test_a_held_final_goes_on_alone_when_the_resumed_sound_brings_no_words() -> None:
    feed = Feed()
    out = join_resumed_finals(feed.events(), release_after=0.2)
    for item in (event(START), event(END), event(START), final("Where is my order?")):
        feed.queue.put_nowait(item)
    assert [(await next_within(out, 1.0)).type for _ in range(3)] == [START, END, START]
    # Held while the caller is heard again, however long that lasts.
    following = asyncio.ensure_future(anext(out))
    assert not (await asyncio.wait({following}, timeout=0.4))[0]
    feed.queue.put_nowait(event(END))  # a cough: it ends, and no final follows
    loop = asyncio.get_running_loop()
    ended = loop.time()
    assert (await asyncio.wait_for(following, 2.0)).type == END
    released = await next_within(out, 2.0)
    assert described([released]) == ["Where is my order?"]
    assert 0.15 < loop.time() - ended < 1.0
    await out.aclose()
    assert feed.closed


async def test_a_held_final_is_sent_when_the_transcription_ends() -> None:
    source = listed(event(START), event(END), event(START), final("Do you deliver"))
    assert described([e async for e in join_resumed_finals(source)])[-1] == "Do you deliver"


KINDS = st.sampled_from(["start", "end", "final"])


async def collected(events: list[stt.SpeechEvent]) -> list[stt.SpeechEvent]:
    return [e async for e in join_resumed_finals(listed(*events))]


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(st.tuples(KINDS, st.text("abc ", min_size=1, max_size=6)), max_size=30))
def test_every_word_and_event_is_passed_on_in_order(steps: list[tuple[str, str]]) -> None:
    events = [
        final(text) if kind == "final" else event(START if kind == "start" else END)
        for kind, text in steps
    ]
    out = asyncio.run(collected(events))
    assert [e.type for e in out if e.type != FINAL] == [e.type for e in events if e.type != FINAL]
    assert " ".join(described([e for e in out if e.type == FINAL])).split() == (
        " ".join(described([e for e in events if e.type == FINAL])).split()
    )
