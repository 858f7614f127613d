"""The OpenAI stand-in's answers carry what OpenAI's do beyond their bodies: an
`x-request-id` on every one, which our clients read (the `openai` SDK as the request's id;
livekit-agents warns on each speech answer without one, so every reply in a test call's
worker log came with a warning production never logs)."""

from __future__ import annotations

import re

import openai

from tests.standins.openai_api import OpenAIStandIn


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
