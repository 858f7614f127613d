"""Imported once in the worker's forkserver (server.PRELOAD_MODULES), before it forks job
processes: what every call needs and only reads is built here, so job processes share it
copy-on-write instead of each building its own.

The VAD and the end-of-turn model (livekit-local-inference's native runtime, or the Silero
plugin's ONNX Runtime session, single-threaded with spinning off) start no thread while
loading, so none is lost across the fork; each job's first prediction sets up its own.
"""

from __future__ import annotations

from worker import providers, sdk_warmup
from worker.server import load_settings

_settings = load_settings()
providers.load_vad(_settings)
if _settings.worker.turn_detection == "model":
    providers.turn_detector()  # its weights, about 250 MB, mapped once for every call
providers.tls_context()
sdk_warmup.warm_up()  # the SDK's lazy first-request work, off every first turn
