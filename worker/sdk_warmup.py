"""One chat completion stream and one speech request through the openai SDK, answered by an
in-memory transport, so the SDK's lazy first-request work is done once in the forkserver.

The SDK builds its response models' pydantic validators and its request types' hints on a
process's first request. In a job process that is the call's first turn: CPU on the event
loop between the caller's last word and the first token (figures: bench/README.md). Done
here, before the fork, every job process inherits it copy-on-write. The synchronous client
shares those caches with the async one and needs no event loop, no thread and no socket,
which a forkserver must not be left holding.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

import httpx2
import openai as openai_sdk

logger = logging.getLogger("worker.sdk_warmup")

_CHUNK: dict[str, Any] = {"id": "chatcmpl-warmup", "object": "chat.completion.chunk",
                          "created": 0, "model": "warm-up"}  # fmt: skip
# The chunk shapes of a streamed reply: its role, words, a tool call, its end and usage.
_CHUNKS: list[dict[str, Any]] = [
    {**_CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                            "finish_reason": None}]},
    {**_CHUNK, "choices": [{"index": 0, "delta": {"content": "Hello."}, "finish_reason": None}]},
    {**_CHUNK, "choices": [{"index": 0, "finish_reason": None, "delta": {"tool_calls": [
        {"index": 0, "id": "call_warmup", "type": "function",
         "function": {"name": "end_call", "arguments": "{}"}}]}}]},
    {**_CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    {**_CHUNK, "choices": [], "usage": {
        "prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}}},
]  # fmt: skip
_SSE = (
    b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in _CHUNKS) + b"data: [DONE]\n\n"
)


def _answer(request: httpx2.Request) -> httpx2.Response:
    if request.url.path.endswith("/chat/completions"):
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=_SSE)
    return httpx2.Response(200, headers={"content-type": "audio/pcm"}, content=bytes(480))


@lru_cache(maxsize=1)  # once per process image: a job process inherits the forkserver's
def warm_up() -> None:
    """The warm-up, where a failure only logs: it is an optimisation, and a call's first turn
    would do the same work itself."""
    try:
        exercise_openai_sdk()
    except Exception as exc:
        logger.warning("worker.sdk_warmup_failed", extra={"error": repr(exc)})


def exercise_openai_sdk() -> int:
    """Stream one chat reply and one speech answer in process; how many chunks came back."""
    with openai_sdk.OpenAI(
        api_key="warm-up",
        base_url="http://warm-up.invalid/v1",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(_answer)),
    ) as client:
        stream = client.chat.completions.create(
            model="warm-up",
            messages=[
                {"role": "system", "content": "warm-up"},
                {"role": "user", "content": "warm-up"},
                {"role": "assistant", "content": "warm-up", "tool_calls": [
                    {"id": "call_warmup", "type": "function",
                     "function": {"name": "end_call", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_warmup", "content": "ok"},
            ],
            tools=[{"type": "function", "function": {
                "name": "end_call", "description": "warm-up", "strict": True,
                "parameters": {"type": "object", "properties": {}, "required": [],
                               "additionalProperties": False}}}],
            stream_options={"include_usage": True},
            stream=True,
            timeout=httpx2.Timeout(5.0),
        )  # fmt: skip
        with stream:
            chunks = sum(1 for _ in stream)
        with client.audio.speech.with_streaming_response.create(
            input="warm-up", model="warm-up", voice="alloy", response_format="pcm", speed=1.0,
            timeout=httpx2.Timeout(5.0),
        ) as speech:  # fmt: skip
            speech.read()
    return chunks
