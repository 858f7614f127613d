"""`GET /healthz`: the process is up and the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from webhook_gateway.deps import PoolDep

router = APIRouter()


@router.get("/healthz")
async def healthz(pool: PoolDep) -> JSONResponse:
    try:
        async with pool.acquire(timeout=2) as conn:
            await conn.fetchval("select 1")
    except Exception:  # noqa: BLE001 - any failure means "not healthy", never a 500 page
        return JSONResponse({"status": "degraded", "database": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
