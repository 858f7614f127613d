"""OpenAI's realtime transcription websocket (`GET /v1/realtime?intent=transcription`), as
the stand-in serves it: the real event names and fields, driven by the client's
`session.update`, `input_audio_buffer.append` / `.commit` / `.clear`.

What the real service does, and so this one:
- Models with server-side endpointing (`gpt-4o-mini-transcribe`, `gpt-4o-transcribe`,
  `whisper-1`) run the session's `server_vad`: `input_audio_buffer.speech_started` when
  speech starts, `speech_stopped` after `silence_duration_ms` of silence, then
  `input_audio_buffer.committed`; transcription starts at the commit, so their `delta`
  events come after it, right before `completed`.
- Natively streaming models (`gpt-realtime-whisper`, `gpt-live-transcribe`) take no
  turn detection (the client commits), and stream `delta` events while the caller speaks.
- `conversation.item.input_audio_transcription.completed` carries the final transcript
  `final_delay` after the commit (server VAD's or the client's).

Which words an utterance holds comes from the same queue the non-streaming endpoint uses
(`OpenAIStandIn.script_transcripts`, else its default), one transcript per committed item,
taken when the item's speech starts; an item with no speech in it transcribes to "".
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import WebSocket, WebSocketDisconnect

SAMPLE_RATE = 24_000  # audio/pcm in a realtime session: 24 kHz 16-bit mono
WINDOW_MS = 20  # the stand-in's VAD judges the audio in windows of this length
WINDOW_BYTES = SAMPLE_RATE * WINDOW_MS // 1000 * 2
VOICED_RMS = 300.0  # 16-bit RMS a window needs to count as speech (phone silence is ~0)
WORD_MS = 200  # voiced audio per word a natively streaming model has heard before its delta
MIN_COMMIT_MS = 100  # the real API refuses to commit less audio than this
MAX_EVENT_BYTES = 1_000_000  # bound one client event (a 50 ms append is ~3 kB)
STREAMING_MODELS = ("gpt-realtime-whisper", "gpt-live-transcribe")
DEFAULT_TURN_DETECTION: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _rms(window: bytes) -> float:
    samples = np.frombuffer(window, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0


@dataclass
class _Item:
    """One user turn's audio: from its first voiced window to its commit."""

    id: str
    text: str
    start_ms: int
    voiced_ms: int = 0
    deltas_sent: int = 0

    @property
    def words(self) -> list[str]:
        return self.text.split(" ") if self.text else []


@dataclass
class RealtimeSession:
    """One websocket's transcription session."""

    websocket: WebSocket
    next_transcript: Callable[[], str]
    record: Callable[[dict[str, Any]], None]
    final_delay: float
    connection: dict[str, Any]  # what the stand-in keeps of this connection (tests read it)
    model: str = "gpt-4o-mini-transcribe"
    language: str | None = None
    turn_detection: dict[str, Any] | None = field(
        default_factory=lambda: dict(DEFAULT_TURN_DETECTION)
    )
    _position_ms: int = 0  # audio appended since the session started
    _buffer_bytes: int = 0  # audio appended since the last commit or clear
    _pending: bytes = b""  # the tail shorter than a VAD window
    _silence_ms: int = 0
    _item: _Item | None = None
    _previous_item_id: str | None = None
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _finals: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def streams_while_speaking(self) -> bool:
        return self.model.startswith(STREAMING_MODELS)

    async def send(self, event_type: str, **fields: Any) -> None:
        async with self._send_lock:
            await self.websocket.send_json({"event_id": _id("event"), "type": event_type, **fields})

    async def error(self, code: str, message: str, event_id: str | None = None) -> None:
        error = {"type": "invalid_request_error", "code": code, "message": message,
                 "param": None, "event_id": event_id}  # fmt: skip
        self.connection["errors"].append(code)
        await self.send("error", error=error)

    def _session_json(self) -> dict[str, Any]:
        transcription: dict[str, Any] = {"model": self.model}
        if self.language:
            transcription["language"] = self.language
        return {
            "type": "transcription",
            "id": self.connection["id"],
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
                    "transcription": transcription,
                    "turn_detection": self.turn_detection,
                    "noise_reduction": None,
                }
            },
        }

    # --- client events ---------------------------------------------------------------------

    async def run(self) -> None:
        await self.send("session.created", session=self._session_json())
        try:
            while True:
                raw = await self.websocket.receive_text()
                await self._handle(raw)
        except WebSocketDisconnect:
            pass
        finally:
            for task in self._finals:
                task.cancel()

    async def _handle(self, raw: str) -> None:
        if len(raw) > MAX_EVENT_BYTES:
            await self.error("event_too_large", f"an event may hold {MAX_EVENT_BYTES} bytes")
            return
        try:
            event = json.loads(raw)
        except ValueError:
            await self.error("invalid_json", "the event is not JSON")
            return
        if not isinstance(event, dict):
            await self.error("invalid_event", "an event is a JSON object")
            return
        kind, event_id = event.get("type"), event.get("event_id")
        if kind == "session.update":
            await self._update(event.get("session"), event_id)
        elif kind == "input_audio_buffer.append":
            await self._append(event.get("audio"), event_id)
        elif kind == "input_audio_buffer.commit":
            await self._client_commit(event_id)
        elif kind == "input_audio_buffer.clear":
            self._item, self._buffer_bytes, self._silence_ms = None, 0, 0
            await self.send("input_audio_buffer.cleared")
        else:
            await self.error("unknown_event", f"unknown event type {kind!r}", event_id)

    async def _update(self, session: Any, event_id: str | None) -> None:
        audio_input = (
            ((session or {}).get("audio") or {}).get("input") if isinstance(session, dict) else None
        )
        if not isinstance(session, dict) or session.get("type") != "transcription":
            await self.error("invalid_session", "session.type must be 'transcription'", event_id)
            return
        audio_input = audio_input if isinstance(audio_input, dict) else {}
        fmt = audio_input.get("format") or {}
        if fmt and (fmt.get("type") != "audio/pcm" or fmt.get("rate", SAMPLE_RATE) != SAMPLE_RATE):
            await self.error("invalid_format", "the stand-in takes audio/pcm at 24 kHz", event_id)
            return
        transcription = audio_input.get("transcription") or {}
        self.model = str(transcription.get("model") or self.model)
        languages = transcription.get("languages") or [transcription.get("language")]
        self.language = languages[0] or self.language
        if "turn_detection" in audio_input:
            turn_detection = audio_input["turn_detection"]
            if turn_detection is not None and self.streams_while_speaking:
                await self.error(
                    "unsupported_turn_detection",
                    f"{self.model} takes no turn_detection; commit the audio buffer",
                    event_id,
                )
                return
            self.turn_detection = (
                {**DEFAULT_TURN_DETECTION, **turn_detection} if turn_detection else None
            )
        elif self.streams_while_speaking:
            self.turn_detection = None
        self.connection["session_updates"].append(session)
        await self.send("session.updated", session=self._session_json())

    async def _append(self, audio: Any, event_id: str | None) -> None:
        try:
            pcm = base64.b64decode(audio, validate=True) if isinstance(audio, str) else None
        except (binascii.Error, ValueError):
            pcm = None
        if pcm is None or len(pcm) % 2:
            await self.error("invalid_audio", "audio must be base64 16-bit PCM", event_id)
            return
        self.connection["audio_bytes"] += len(pcm)
        self._buffer_bytes += len(pcm)
        data = self._pending + pcm
        whole = len(data) - len(data) % WINDOW_BYTES
        self._pending = data[whole:]
        for start in range(0, whole, WINDOW_BYTES):
            await self._window(data[start : start + WINDOW_BYTES])

    async def _window(self, window: bytes) -> None:
        self._position_ms += WINDOW_MS
        voiced = _rms(window) >= VOICED_RMS
        item = self._item
        if item is None:
            if not voiced:
                return
            start_ms = self._position_ms - WINDOW_MS
            if self.turn_detection is not None:
                start_ms = max(0, start_ms - int(self.turn_detection["prefix_padding_ms"]))
            item = _Item(id=_id("item"), text=self.next_transcript(), start_ms=start_ms)
            self._item = item
            if self.turn_detection is not None:
                await self.send(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=item.start_ms,
                    item_id=item.id,
                )
        if voiced:
            self._silence_ms = 0
            item.voiced_ms += WINDOW_MS
            if self.streams_while_speaking:
                # the last word waits for the commit: a model hears the utterance out first
                due = min(len(item.words) - 1, item.voiced_ms // WORD_MS)
                while item.deltas_sent < due:
                    await self._delta(item)
            return
        self._silence_ms += WINDOW_MS
        if self.turn_detection is not None and self._silence_ms >= int(
            self.turn_detection["silence_duration_ms"]
        ):
            await self.send(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=self._position_ms,
                item_id=item.id,
            )
            await self._commit(item)

    async def _client_commit(self, event_id: str | None) -> None:
        if self._buffer_bytes < SAMPLE_RATE * 2 * MIN_COMMIT_MS // 1000:
            await self.error(
                "input_audio_buffer_commit_empty",
                f"buffer too small: commit at least {MIN_COMMIT_MS} ms of audio",
                event_id,
            )
            return
        item = self._item or _Item(id=_id("item"), text="", start_ms=self._position_ms)
        await self._commit(item)

    # --- server events ---------------------------------------------------------------------

    async def _delta(self, item: _Item) -> None:
        word = item.words[item.deltas_sent]
        item.deltas_sent += 1
        await self.send(
            "conversation.item.input_audio_transcription.delta",
            item_id=item.id,
            content_index=0,
            delta=word if item.deltas_sent == 1 else " " + word,
        )

    async def _commit(self, item: _Item) -> None:
        audio_bytes = self._buffer_bytes
        self._item, self._buffer_bytes, self._silence_ms = None, 0, 0
        await self.send(
            "input_audio_buffer.committed", item_id=item.id, previous_item_id=self._previous_item_id
        )
        self._previous_item_id = item.id
        committed_at = time.time()
        task = asyncio.create_task(self._complete(item, audio_bytes, committed_at))
        self._finals.add(task)
        task.add_done_callback(self._finals.discard)

    async def _complete(self, item: _Item, audio_bytes: int, committed_at: float) -> None:
        await asyncio.sleep(self.final_delay)
        while item.deltas_sent < len(item.words):
            await self._delta(item)
        seconds = round(audio_bytes / 2 / SAMPLE_RATE, 3)
        self.record(
            {"model": self.model, "language": self.language, "audio_bytes": audio_bytes,
             "at": time.time(), "committed_at": committed_at, "text": item.text,
             "item_id": item.id, "realtime": True, "start_ms": item.start_ms,
             "voiced_ms": item.voiced_ms, "end_ms": self._position_ms}
        )  # fmt: skip
        await self.send(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=item.text,
            usage={"type": "duration", "seconds": seconds},
        )
