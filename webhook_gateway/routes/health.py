"""`GET /healthz`: the process is up and the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from shared.db import database_answers
from webhook_gateway.deps import PoolDep

router = APIRouter()


@router.get("/healthz")
async def healthz(pool: PoolDep) -> JSONResponse:
    if not await database_answers(pool):
        return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
