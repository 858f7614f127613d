"""A local OpenAI-compatible API speaking the real wire format.

Serves `POST /v1/chat/completions` (SSE streaming and plain JSON), `POST /v1/audio/transcriptions`,
the realtime transcription websocket `/v1/realtime?intent=transcription`
(tests/standins/openai_realtime.py) and `POST /v1/audio/speech` (real PCM/WAV audio), so our
real clients (the `openai` SDK and livekit-plugins-openai) can be pointed at it with
OPENAI_BASE_URL. Tests script replies, latencies and failures, and read what was sent.

Run on its own (for a bench or a manual worker): `python -m tests.standins.openai_api
[--port P] [--stt-final-delay 0.1] [--stt-delay S] [--tts-first-byte-delay S]`.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import threading
import time
import uuid
import wave
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.standins.openai_realtime import RealtimeSession
from tests.standins.server import ThreadedServer

# The voices OpenAI's /v1/audio/speech accepts (its API reference); any other is a 400 there.
OPENAI_TTS_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer",
    "verse", "marin", "cedar",
)  # fmt: skip
TTS_SAMPLE_RATE = 24_000


class RequestIds:
    """Every HTTP answer carries an `x-request-id`, as OpenAI's do: the SDK reads it as the
    request's id, and livekit-agents logs a warning for each speech answer without one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                header = (b"x-request-id", f"req_{uuid.uuid4().hex}".encode())
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


@dataclass
class ChatScript:
    """What the next chat completions answer (consumed in order; `default_reply` after)."""

    reply: str
    first_token_delay: float = 0.0
    token_delay: float = 0.0
    status: int = 200  # e.g. 500/429 for a retryable failure, 400 for a final one
    tool_call: str | None = None  # stream a call of this function after the reply text
    tool_arguments: str = "{}"
    # How a stream ends after the text: "done" (finish_reason, then [DONE]); "cut" (the body
    # just ends, with neither: a truncated stream); "error" (an error event, as OpenAI sends
    # when the model fails mid-answer, then the body ends).
    ending: Literal["done", "cut", "error"] = "done"


@dataclass
class OpenAIStandIn:
    default_reply: str = "Thanks for your message. How can I help?"
    default_transcript: str = "I would like to know my order status."
    tts_seconds_per_char: float = 0.06
    stt_delay: float = 0.0  # the non-streaming endpoint's answer delay
    # Realtime transcription: from the end of an utterance's audio (the server VAD's
    # speech_stopped, or the client's commit) to its `completed` transcript.
    stt_final_delay: float = 0.1
    tts_first_byte_delay: float = 0.0
    speech_failures: int = 0  # the next this many speech requests answer 500
    chat_requests: list[dict[str, Any]] = field(default_factory=list)
    # One per transcript given, from either STT path (realtime ones carry "realtime": True).
    transcription_requests: list[dict[str, Any]] = field(default_factory=list)
    realtime_connections: list[dict[str, Any]] = field(default_factory=list)
    speech_requests: list[dict[str, Any]] = field(default_factory=list)
    _chat_scripts: deque[ChatScript] = field(default_factory=deque)
    _transcripts: deque[str] = field(default_factory=deque)
    _realtime_refusals: deque[int] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    # --- scripting -------------------------------------------------------------------------

    def script_chat(self, *scripts: ChatScript | str) -> None:
        with self._lock:
            for s in scripts:
                self._chat_scripts.append(ChatScript(s) if isinstance(s, str) else s)

    def script_transcripts(self, *texts: str) -> None:
        with self._lock:
            self._transcripts.extend(texts)

    def refuse_realtime(self, *statuses: int) -> None:
        """Refuse the next realtime websocket handshakes with these HTTP statuses."""
        with self._lock:
            self._realtime_refusals.extend(statuses)

    def reset(self) -> None:
        with self._lock:
            self._chat_scripts.clear()
            self._transcripts.clear()
            self._realtime_refusals.clear()
            self.chat_requests.clear()
            self.transcription_requests.clear()
            self.realtime_connections.clear()
            self.speech_requests.clear()
            self.speech_failures = 0

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url + "/v1"

    def _next_chat(self) -> ChatScript:
        with self._lock:
            return (
                self._chat_scripts.popleft()
                if self._chat_scripts
                else ChatScript(self.default_reply)
            )

    def _next_transcript(self) -> str:
        with self._lock:
            return self._transcripts.popleft() if self._transcripts else self.default_transcript

    def _record_transcription(self, request: dict[str, Any]) -> None:
        with self._lock:
            self.transcription_requests.append(request)

    def _next_refusal(self) -> int | None:
        with self._lock:
            return self._realtime_refusals.popleft() if self._realtime_refusals else None

    # --- the app ---------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()
        app.add_middleware(RequestIds)

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            with self._lock:
                self.chat_requests.append(
                    {"body": body, "auth": request.headers.get("authorization"), "at": time.time()}
                )
            script = self._next_chat()
            if script.status != 200:
                return JSONResponse(
                    {"error": {"message": "scripted failure", "type": "server_error"}},
                    status_code=script.status,
                )
            model = body.get("model", "stand-in")
            created = int(time.time())
            if not body.get("stream"):
                await asyncio.sleep(script.first_token_delay)
                return JSONResponse(
                    {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": script.reply},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    }
                )

            async def events() -> AsyncIterator[bytes]:
                def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
                    payload = {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    }
                    return f"data: {json.dumps(payload)}\n\n".encode()

                await asyncio.sleep(script.first_token_delay)
                yield chunk({"role": "assistant", "content": ""})
                words = script.reply.split(" ") if script.reply else []
                for i, word in enumerate(words):
                    yield chunk({"content": word if i == 0 else " " + word})
                    if script.token_delay:
                        await asyncio.sleep(script.token_delay)
                if script.ending == "cut":
                    return
                if script.ending == "error":
                    error = {"message": "The server had an error while processing your request.",
                             "type": "server_error", "param": None, "code": None}  # fmt: skip
                    yield f"data: {json.dumps({'error': error})}\n\n".encode()
                    return
                if script.tool_call:
                    call = {"index": 0, "id": f"call_{script.tool_call}", "type": "function",
                            "function": {"name": script.tool_call,
                                         "arguments": script.tool_arguments}}  # fmt: skip
                    yield chunk({"tool_calls": [call]})
                    yield chunk({}, "tool_calls")
                else:
                    yield chunk({}, "stop")
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": {"prompt_tokens": 10, "completion_tokens": len(words),
                                  "total_tokens": 10 + len(words)},
                    }  # fmt: skip
                    yield f"data: {json.dumps(usage)}\n\n".encode()
                yield b"data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")

        @app.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> Response:
            form = await request.form()
            upload = form.get("file")
            audio = await upload.read() if upload is not None and hasattr(upload, "read") else b""
            await form.close()  # its spooled upload file, else an unraisable warning at GC
            text = self._next_transcript()
            with self._lock:
                self.transcription_requests.append(
                    {"model": form.get("model"), "language": form.get("language"),
                     "audio_bytes": len(audio), "at": time.time(), "text": text}
                )  # fmt: skip
            await asyncio.sleep(self.stt_delay)
            return JSONResponse({"text": text})

        @app.websocket("/v1/realtime")
        async def realtime(websocket: WebSocket) -> None:
            connection: dict[str, Any] = {
                "id": "sess_" + uuid.uuid4().hex[:20],
                "query": dict(websocket.query_params),
                "auth": websocket.headers.get("authorization"),
                "at": time.time(),
                "session_updates": [],
                "audio_bytes": 0,
                "errors": [],
                "refused": None,
            }
            with self._lock:
                self.realtime_connections.append(connection)
            refusal = self._next_refusal()
            if refusal is not None:
                connection["refused"] = refusal
                body = {"error": {"message": "scripted refusal", "type": "server_error"}}
                await websocket.send_denial_response(JSONResponse(body, status_code=refusal))
                return
            if websocket.query_params.get("intent") != "transcription":
                await websocket.close(code=1008, reason="the stand-in serves intent=transcription")
                return
            await websocket.accept()
            session = RealtimeSession(
                websocket=websocket,
                next_transcript=self._next_transcript,
                record=self._record_transcription,
                final_delay=self.stt_final_delay,
                connection=connection,
            )
            await session.run()

        @app.post("/v1/audio/speech")
        async def speech(request: Request) -> Response:
            started = time.monotonic()
            body = await request.json()
            with self._lock:
                self.speech_requests.append({"body": body, "at": time.time()})
                failing = self.speech_failures > 0
                self.speech_failures -= 1 if failing else 0
            if failing:
                return JSONResponse(
                    {"error": {"message": "scripted failure", "type": "server_error"}},
                    status_code=500,
                )
            voice = body.get("voice")
            if voice not in OPENAI_TTS_VOICES:
                # OpenAI's own answer to a voice it does not have: a 400 naming the parameter.
                return JSONResponse(
                    {
                        "error": {
                            "message": f"Invalid value: {voice!r}. Supported values are: "
                            + ", ".join(repr(v) for v in OPENAI_TTS_VOICES),
                            "type": "invalid_request_error",
                            "param": "voice",
                            "code": "invalid_value",
                        }
                    },
                    status_code=400,
                )
            seconds = max(0.3, len(body.get("input", "")) * self.tts_seconds_per_char)
            pcm = tone_pcm(seconds, TTS_SAMPLE_RATE)
            # The first byte comes the configured delay after the request, synthesis included.
            await asyncio.sleep(max(0.0, self.tts_first_byte_delay - (time.monotonic() - started)))
            if body.get("response_format") == "wav":
                return Response(wav_bytes(pcm, TTS_SAMPLE_RATE), media_type="audio/wav")
            return Response(pcm, media_type="audio/pcm")

        return app

    def start(self) -> OpenAIStandIn:
        self.server = ThreadedServer(self.app()).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()


def tone_pcm(seconds: float, sample_rate: int, freq: float = 440.0) -> bytes:
    """16-bit mono PCM of a voiced-like tone (two harmonics), loud enough to be heard.

    Vectorised: the speech answer's first byte must come `tts_first_byte_delay` after the
    request, as OpenAI's streamed audio does, not after seconds of per-sample synthesis."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    value = 0.35 * np.sin(2 * math.pi * freq * t) + 0.15 * np.sin(4 * math.pi * freq * t)
    return (value * 32767).astype("<i2").tobytes()


def wav_bytes(pcm: bytes, sample_rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return buffer.getvalue()


def main() -> None:
    """Serve the stand-in until interrupted (its base URL on the first line of stdout)."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--stt-final-delay", type=float, default=OpenAIStandIn.stt_final_delay)
    parser.add_argument("--stt-delay", type=float, default=OpenAIStandIn.stt_delay)
    parser.add_argument(
        "--tts-first-byte-delay", type=float, default=OpenAIStandIn.tts_first_byte_delay
    )
    args = parser.parse_args()
    standin = OpenAIStandIn(
        stt_final_delay=args.stt_final_delay,
        stt_delay=args.stt_delay,
        tts_first_byte_delay=args.tts_first_byte_delay,
    )
    standin.server = ThreadedServer(standin.app(), port=args.port).start()
    print(standin.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
