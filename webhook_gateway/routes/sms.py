"""Routes for the sms part of the gateway (filled in by its issue)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
