"""Imported once in the worker's forkserver (server.PRELOAD_MODULES), before it forks job
processes: what every call needs and only reads is built here, so job processes share it
copy-on-write instead of each building its own.

The Silero VAD's ONNX Runtime session runs single-threaded with spinning off (the plugin's
own options), so no runtime thread exists to be lost across the fork.
"""

from __future__ import annotations

from worker import providers
from worker.server import load_settings

providers.load_vad(load_settings())
providers.tls_context()
