"""The OpenAI stand-in's answers carry what OpenAI's do beyond their bodies: an
`x-request-id` on every one, which our clients read (the `openai` SDK as the request's id;
livekit-agents warns on each speech answer without one, so every reply in a test call's
worker log came with a warning production never logs), and speech whose first byte comes
at the configured delay, which the bench counts as the provider's share of a reply."""

from __future__ import annotations

import re
import time

import openai

from tests.standins.openai_api import TTS_SAMPLE_RATE, OpenAIStandIn


async def test_every_answer_carries_a_request_id(openai_standin: OpenAIStandIn) -> None:
    client = openai.AsyncOpenAI(api_key="test-openai-key", base_url=openai_standin.base_url)
    async with client:
        chat = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
        speech = await client.audio.speech.with_raw_response.create(
            model="gpt-4o-mini-tts", voice="alloy", input="Hello", response_format="wav"
        )
        transcription = await client.audio.transcriptions.with_raw_response.create(
            model="gpt-4o-mini-transcribe", file=("hello.wav", speech.content, "audio/wav")
        )
    ids = [r.headers.get("x-request-id") for r in (chat, speech, transcription)]
    assert all(re.fullmatch(r"req_[0-9a-f]{32}", i or "") for i in ids), ids
    assert len(set(ids)) == 3  # one per answer


async def test_a_long_speech_answer_starts_after_the_first_byte_delay_alone() -> None:
    # OpenAI streams speech, so its first byte does not wait for the whole answer's audio.
    # The stand-in's did: a new length's tone was synthesised sample by sample after the
    # delay (0.9 s for a minute of audio), which the bench counted as the agent's latency.
    standin = OpenAIStandIn(tts_first_byte_delay=0.5).start()  # its own: the delay is ours
    text = "x" * 2_000  # two minutes of audio at tts_seconds_per_char
    client = openai.AsyncOpenAI(api_key="test-openai-key", base_url=standin.base_url)
    try:
        async with client:
            started = time.monotonic()
            async with client.audio.speech.with_streaming_response.create(
                model="gpt-4o-mini-tts", voice="alloy", input=text, response_format="pcm"
            ) as speech:
                first_byte = time.monotonic() - started
                audio = await speech.read()
    finally:
        standin.stop()
    assert len(audio) == 2 * int(2_000 * standin.tts_seconds_per_char * TTS_SAMPLE_RATE)
    assert 0.5 <= first_byte < 1.0, first_byte
