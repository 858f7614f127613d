"""The caller's media: a loopback RTP endpoint speaking G.711 μ-law (PCMU, payload type 0).

It sends a packet every 20 ms for the whole call (silence between utterances, as a phone
does), and times and measures every packet it receives (tests/support/audio.py), so a test
can tell when the agent speaks and stops. Symmetric RTP: it sends to the address the
bridge's audio comes from, or to the address from the bridge's SDP answer when that is known
first.
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from typing import ClassVar, cast

import numpy as np
import numpy.typing as npt

from tests.support.audio import CallerAudio, rms

SAMPLE_RATE = 8_000
PACKET_SAMPLES = 160  # 20 ms
PCMU = 0
TELEPHONE_EVENT = 101  # RFC 4733 keypad events, as call.xml's SDP offers them
_EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
_EVENT_PACKETS = 5  # 100 ms of a key held down, then three end-of-event packets

_BIAS = 0x84


def ulaw_encode(pcm: bytes) -> bytes:
    """16-bit little-endian PCM -> G.711 μ-law (the reference 14-bit segment encoder)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32) >> 2
    mask = np.where(samples < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(samples), 8159) + (_BIAS >> 2)
    segment = np.maximum(np.floor(np.log2(magnitude)).astype(np.int32) - 5, 0)
    code = (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F)
    code = np.where(segment >= 8, 0x7F, code)  # past the last segment: full scale
    return (code ^ mask).astype(np.uint8).tobytes()


def ulaw_decode(data: bytes) -> npt.NDArray[np.int16]:
    """G.711 μ-law -> 16-bit samples."""
    u = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


@dataclass
class RtpPeer(CallerAudio, asyncio.DatagramProtocol):
    QUIET_SECONDS: ClassVar[float] = 0.6

    ssrc: int = 0x5A55_1A00
    heard: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, rms)
    packets_received: int = 0
    packets_sent: int = 0
    speech_packets_sent: int = 0
    remote: tuple[str, int] | None = None
    speech_started_at: float | None = None
    speech_ended_at: float | None = None
    _queue: bytearray = field(default_factory=bytearray)
    _transport: asyncio.DatagramTransport | None = None
    _sender: asyncio.Task[None] | None = None
    _seq: int = 0
    _timestamp: int = 0
    _keys: list[str] = field(default_factory=list)  # keypad presses waiting to be sent
    _event_step: int = 0
    _event_timestamp: int = 0

    @property
    def port(self) -> int:
        assert self._transport is not None
        port: int = self._transport.get_extra_info("sockname")[1]
        return port

    async def open(self) -> RtpPeer:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self._sender = asyncio.create_task(self._send_loop(), name="rtp_sender")
        return self

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        if self._transport is not None:
            self._transport.close()

    # --- asyncio protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, int]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        if self.remote is None:
            self.remote = (str(addr[0]), int(addr[1]))
        payload_type = data[1] & 0x7F
        if payload_type != PCMU:
            return  # telephone-event and comfort noise carry no voice
        csrc = (data[0] & 0x0F) * 4
        self.packets_received += 1
        self.hear(rms(ulaw_decode(data[12 + csrc :])))

    # --- sending ---------------------------------------------------------------------------

    def say(self, pcm_8k: bytes) -> float:
        """Queue 16-bit 8 kHz PCM to be spoken; returns when it starts (monotonic)."""
        start = time.monotonic()
        self.speech_started_at = start
        self.speech_ended_at = None
        self._queue.extend(pcm_8k)
        return start

    def press(self, keys: str) -> None:
        """Press keypad keys: RFC 4733 telephone-events in place of audio, as a phone sends."""
        self._keys.extend(keys)

    def _event_packet(self) -> bytes | None:
        """The next telephone-event packet of the key being pressed, or None."""
        if not self._keys:
            return None
        step = self._event_step
        if step == 0:
            self._event_timestamp = self._timestamp
        end = step >= _EVENT_PACKETS
        duration = min(step + 1, _EVENT_PACKETS) * PACKET_SAMPLES
        marker = 0x80 if step == 0 else 0
        header = struct.pack(
            "!BBHII", 0x80, marker | TELEPHONE_EVENT, self._seq & 0xFFFF,
            self._event_timestamp & 0xFFFFFFFF, self.ssrc,
        )  # fmt: skip
        payload = struct.pack("!BBH", _EVENT_CODES[self._keys[0]], (0x80 if end else 0) | 10,
                              duration)  # fmt: skip
        self._event_step += 1
        if self._event_step >= _EVENT_PACKETS + 3:
            self._keys.pop(0)
            self._event_step = 0
        return header + payload

    async def _send_loop(self) -> None:
        interval = PACKET_SAMPLES / SAMPLE_RATE
        next_at = time.monotonic()
        silence = b"\x00\x00" * PACKET_SAMPLES
        while True:
            next_at += interval
            chunk = bytes(self._queue[: PACKET_SAMPLES * 2])
            del self._queue[: PACKET_SAMPLES * 2]
            speaking = bool(chunk)
            chunk = chunk.ljust(PACKET_SAMPLES * 2, b"\x00") if chunk else silence
            if speaking and not self._queue and self.speech_ended_at is None:
                self.speech_ended_at = time.monotonic() + interval
            event = self._event_packet() if self.remote is not None else None
            if event is not None and self._transport is not None:
                self._transport.sendto(event, self.remote)
            elif self.remote is not None and self._transport is not None:
                header = struct.pack(
                    "!BBHII", 0x80, PCMU, self._seq & 0xFFFF, self._timestamp & 0xFFFFFFFF,
                    self.ssrc,
                )  # fmt: skip
                self._transport.sendto(header + ulaw_encode(chunk), self.remote)
                self.packets_sent += 1
                self.speech_packets_sent += speaking
            self._seq += 1
            self._timestamp += PACKET_SAMPLES
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # --- listening (the rest is CallerAudio's) ----------------------------------------------

    def hearing_report(self) -> str:
        return f"{self.packets_received} RTP packets received"
