"""The OpenAI plugin's STT, with its realtime websocket's failures made the framework's
provider errors, and every STT failure logged.

The plugin's realtime stream (`use_realtime=True`) opens `{OPENAI_BASE_URL}/realtime
?intent=transcription` through a connection pool. A handshake that fails (refused, reset,
timed out) leaves the plugin as a bare aiohttp or timeout error, which the framework's retry
loop treats as final: the call would lose its ears on one blip. Mapped here to
`APIStatusError` / `APIConnectionError` / `APITimeoutError`, it is retried within the
session's STT connect options (`max_retry`, `retry_interval`, `timeout`), and a 4xx that will
never succeed (a wrong key, a server without the endpoint) fails at once.
"""

from __future__ import annotations

import logging

import aiohttp
from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError, stt
from livekit.plugins import openai

logger = logging.getLogger("worker.stt")


class RealtimeSTT(openai.STT):
    """`openai.STT(use_realtime=True)` whose websocket handshake failures are retryable."""

    # The plugin's own hook and signature, so `timeout` stays a parameter.
    async def _connect_ws(self, timeout: float) -> aiohttp.ClientWebSocketResponse:  # noqa: ASYNC109
        try:
            return await super()._connect_ws(timeout)
        except aiohttp.WSServerHandshakeError as exc:
            raise APIStatusError(
                f"realtime transcription refused the websocket (HTTP {exc.status})",
                status_code=exc.status,
            ) from exc
        except TimeoutError as exc:
            raise APITimeoutError("realtime transcription websocket: connect timed out") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise APIConnectionError(f"realtime transcription websocket: {exc}") from exc


def log_failures(engine: openai.STT, *, mode: str, agent_id: str) -> None:
    """One log line per failed STT attempt: `call.stt_failed` (warning while the framework
    retries, error once it gave up and the caller is no longer heard)."""

    def on_error(event: stt.STTError) -> None:
        extra = {
            "mode": mode,
            "model": engine.model,
            "agent_id": agent_id,
            "recoverable": event.recoverable,
            "error_type": type(event.error).__name__,
            "error": str(event.error)[:300],
        }
        logger.log(
            logging.WARNING if event.recoverable else logging.ERROR, "call.stt_failed", extra=extra
        )

    engine.on("error", on_error)
