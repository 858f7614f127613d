"""Request metrics for every route (shared/metrics.py): a pure ASGI middleware, so the SMS
webhook, the hot path, pays two clock reads and two counter updates, no extra task."""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics

UNMATCHED = "unmatched"  # no route (404s, probes): one label, whatever the path
# Any other method (a client may send any token) is one label too.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """`routes`: the app's routes, so one FastAPI does not name in the scope (a plain
    Starlette route, like the SMS webhook's) is found by its endpoint."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self._paths: dict[object, str] = {}
        for route in routes:
            endpoint, path = getattr(route, "endpoint", None), getattr(route, "path", None)
            if endpoint is not None and isinstance(path, str):
                self._paths.setdefault(endpoint, path)
        # Labelled children, found once per (route, method, status) instead of per request.
        self._counts: dict[tuple[str, str, int], Counter] = {}
        self._latencies: dict[str, Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes answers 500 (ServerErrorMiddleware)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = self._route_of(scope)
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self._observe(route, method, status, time.perf_counter() - started)

    def _route_of(self, scope: Scope) -> str:
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        return self._paths.get(scope.get("endpoint"), UNMATCHED)

    def _observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = metrics.HTTP_REQUESTS.labels(route, method, str(status))
        count.inc()
        latency = self._latencies.get(route)
        if latency is None:
            latency = self._latencies[route] = metrics.HTTP_LATENCY.labels(route)
        latency.observe(seconds)
