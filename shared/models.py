"""Domain records shared by both edges, built from database rows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, Self
from uuid import UUID

import asyncpg


class ChannelKind(StrEnum):
    SMS = "sms"
    VOICE = "voice"


class Modality(StrEnum):
    TEXT = "text"
    VOICE = "voice"
    TEXT_VOICE = "text_voice"

    @property
    def has_voice(self) -> bool:
        return self in (Modality.VOICE, Modality.TEXT_VOICE)

    @property
    def has_text(self) -> bool:
        return self in (Modality.TEXT, Modality.TEXT_VOICE)


class BillingMode(StrEnum):
    INFRA_ONLY = "infra_only"
    LIVE = "live"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    SUPPORT = "support"
    VIEWER = "viewer"

    @property
    def can_manage_channels(self) -> bool:
        return self in (Role.OWNER, Role.ADMIN)


class ChargeKind(StrEnum):
    OUTBOUND_MESSAGES = "outbound_messages"
    VOICE_MINUTES = "voice_minutes"


class _Row:
    @classmethod
    def from_row(cls, row: asyncpg.Record | dict[str, Any] | None) -> Self:
        if row is None:  # an INSERT/UPDATE ... RETURNING that must have returned a row
            raise LookupError(f"expected a {cls.__name__} row, got none")
        data = dict(row)
        return cls(**{f.name: data[f.name] for f in fields(cls)})  # type: ignore[arg-type]

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class Plan(_Row):
    code: str
    name: str
    includes_sms: bool
    includes_voice: bool
    sms_segment_price_minor: int
    voice_minute_price_minor: int
    currency: str

    def includes(self, kind: ChannelKind) -> bool:
        return self.includes_sms if kind is ChannelKind.SMS else self.includes_voice


@dataclass(frozen=True)
class Workspace(_Row):
    id: UUID
    name: str
    plan: str
    billing_mode: str
    credit_balance_minor: int
    enabled_calling_codes: list[int]
    created_at: datetime


@dataclass(frozen=True)
class Agent(_Row):
    id: UUID
    workspace_id: UUID
    name: str
    instructions: str
    greeting: str
    modality: str
    language: str
    voice: str | None
    chat_model: str | None
    active: bool
    max_call_seconds: int
    handoff_number: str | None
    created_at: datetime
    handoff_digit: str = "0"  # "" : no keypad hand-off
    handoff_mode: str = "cold"  # "cold" | "warm"
    idle_prompt_seconds: int | None = None  # None: settings.calls.idle_prompt_seconds
    idle_goodbye_seconds: int | None = None  # None: settings.calls.idle_goodbye_seconds

    @property
    def has_voice(self) -> bool:
        return Modality(self.modality).has_voice


@dataclass(frozen=True)
class Channel(_Row):
    id: UUID
    workspace_id: UUID
    kind: str
    phone_number: str
    active: bool
    created_at: datetime
    updated_at: datetime
