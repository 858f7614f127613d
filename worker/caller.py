"""Who is calling: LiveKit participants and job/room metadata translated into our terms.

A SIP participant carries the number dialled (`sip.trunkPhoneNumber`), the caller
(`sip.phoneNumber`) and the call id: our gateway's `X-Wassla-Call-Sid` header mapped to
`wassla.call_sid`, else Twilio's `sip.twilio.callSid`, else LiveKit's own `sip.callID`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from livekit import rtc

from shared.providers.livekit_sip import CALL_SID_ATTRIBUTE

CALL_SID_ATTRIBUTES = (CALL_SID_ATTRIBUTE, "sip.twilio.callSid", "sip.callID")


@dataclass(frozen=True)
class Caller:
    identity: str
    is_sip: bool
    call_sid: str | None
    called_number: str | None  # our number (SIP only)
    caller_number: str | None
    joined_at: datetime


def call_sid_from_attributes(attributes: dict[str, str]) -> str | None:
    for name in CALL_SID_ATTRIBUTES:
        value = attributes.get(name, "").strip()
        if value:
            return value
    return None


def caller_from_participant(participant: rtc.RemoteParticipant) -> Caller:
    attributes = dict(participant.attributes)
    is_sip = participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
    return Caller(
        identity=participant.identity,
        is_sip=is_sip,
        call_sid=call_sid_from_attributes(attributes) if is_sip else None,
        called_number=attributes.get("sip.trunkPhoneNumber") or None,
        caller_number=attributes.get("sip.phoneNumber") or None,
        joined_at=participant.joined_at or datetime.now(UTC),
    )


def _agent_id_in(metadata: str | None) -> str | None:
    if not metadata:
        return None
    try:
        data: Any = json.loads(metadata)
    except ValueError:
        return None
    if isinstance(data, dict):
        value = data.get("agent_id") or data.get("agentId")
        if isinstance(value, str) and value:
            return value
    return None


def playground_agent_id(
    job_metadata: str | None, room_metadata: str | None, default: str | None
) -> str | None:
    """The agent a playground session asked for: job metadata, then room metadata, then config."""
    return _agent_id_in(job_metadata) or _agent_id_in(room_metadata) or default
