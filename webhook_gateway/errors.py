"""Our exceptions -> HTTP status codes, in one place."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from shared import metrics
from shared.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MissingSetting,
    NotFound,
    PlanExcludesChannel,
    ProviderError,
    SchemaNotCurrent,
    Unauthenticated,
    WasslaError,
)
from shared.pg import UNAVAILABLE_ERRORS, is_outage

logger = logging.getLogger("webhook_gateway")

_STATUS: list[tuple[type[WasslaError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (PlanExcludesChannel, 402),
    (SchemaNotCurrent, 503),
    (Unauthenticated, 401),
    (Forbidden, 403),
    # A feature whose setting is unset (e.g. WASSLA_JWT_SECRET): the service, not the caller.
    (MissingSetting, 503),
    # An upstream API (Twilio REST) failed while we acted for the caller.
    (ProviderError, 502),
]


def status_for(exc: WasslaError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def _headers_for(exc: WasslaError) -> dict[str, str] | None:
    if isinstance(exc, Unauthenticated):
        # RFC 6750: no error code when no credentials were sent at all.
        challenge = 'Bearer realm="wassla"'
        if exc.reason != "missing":
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WasslaError)
        status = status_for(exc)
        if status >= 500:
            logger.error("gateway.domain_error", exc_info=exc, extra={"path": request.url.path})
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=_headers_for(exc))

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        if not is_outage(exc):
            raise exc  # a bad argument of ours: a 500 with its traceback, not an outage
        # Twilio retries a 503; nothing was half-written because every write is one transaction.
        metrics.DATABASE_UNAVAILABLE.labels("gateway_request").inc()
        logger.warning(
            "gateway.database_unavailable", extra={"path": request.url.path, "error": repr(exc)}
        )
        return Response(
            "database unavailable, retry", status_code=503, headers={"Retry-After": "1"}
        )

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": exc.errors()}, status_code=422)

    app.add_exception_handler(WasslaError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, database_unavailable)
