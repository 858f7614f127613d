"""One final transcript for an utterance the transcription split at a short gap.

Realtime transcription's server VAD closes an item after `OPENAI_STT_SILENCE_MS` of silence,
so a caller who leaves that long a gap between two words of one sentence ("What time do you
… open tomorrow?") is transcribed as two items. Every final transcript starts a reply
(preemptive generation): the first half's reply is started, then thrown away when the second
half's final comes, a chat request billed for nothing. A final that arrives after the caller
has started speaking again belongs to a turn that cannot end yet: it is held and sent joined
to the next final. A pause the caller has not yet ended when its final comes (a sentence
paused mid-way, a finished one) is passed on at once, so the end-of-turn model and the reply
start as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterable

from livekit.agents import stt

# Once the resumed speech has ended, how long its final may take before the held one goes
# on alone (the resumed sound had no words: a breath, a cough).
RELEASE_AFTER_SECONDS = 1.0


def joined(first: stt.SpeechEvent, second: stt.SpeechEvent) -> stt.SpeechEvent:
    """`second` carrying both transcripts, `first`'s words before its own."""
    head, tail = first.alternatives[0], second.alternatives[0]
    text = f"{head.text.strip()} {tail.text.strip()}".strip()
    both = dataclasses.replace(
        tail,
        text=text,
        start_time=head.start_time,
        confidence=(head.confidence + tail.confidence) / 2,
        words=[*(head.words or []), *(tail.words or [])] or None,
    )
    return dataclasses.replace(second, alternatives=[both, *second.alternatives[1:]])


async def join_resumed_finals(
    events: AsyncIterable[stt.SpeechEvent], *, release_after: float = RELEASE_AFTER_SECONDS
) -> AsyncGenerator[stt.SpeechEvent, None]:
    """`events` with each final transcript that came while the caller was speaking again
    held back and joined to the next final (or sent alone `release_after` seconds after that
    speech ended without one)."""
    source = aiter(events)
    loop = asyncio.get_running_loop()
    speaking = False
    held: stt.SpeechEvent | None = None
    due: float | None = None  # the resumed speech ended: its final is due by then
    pending: asyncio.Future[stt.SpeechEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            timeout = None if due is None else max(0.0, due - loop.time())
            done, _ = await asyncio.wait({pending}, timeout=timeout)
            if not done and held is not None:
                yield held
                held, due = None, None
                continue
            arrived, pending = pending, None
            try:
                event = arrived.result()
            except StopAsyncIteration:
                break
            if event.type == stt.SpeechEventType.START_OF_SPEECH:
                speaking = True
            elif event.type == stt.SpeechEventType.END_OF_SPEECH:
                speaking = False
                if held is not None:
                    due = loop.time() + release_after
            elif event.type == stt.SpeechEventType.FINAL_TRANSCRIPT and event.alternatives:
                if held is not None:
                    event, held, due = joined(held, event), None, None
                if speaking:
                    held = event
                    continue
            yield event
        if held is not None:
            yield held
    finally:
        # Closed early (the session's STT node stops): stop the source too, so its stream
        # closes now rather than when collected.
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        elif isinstance(source, AsyncGenerator):
            await source.aclose()
