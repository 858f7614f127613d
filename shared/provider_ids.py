"""The ids we store messages and recordings under when the provider gives none of its own.

A message's `provider_id` is unique, so storing under the same id twice is a no-op: a Twilio
retry of a voice turn, or the worker re-storing a chat item, never duplicates a turn. Texts
and Twilio recordings use the provider's own sid (`SM…`, `RE…`) as is.
"""

from __future__ import annotations

from uuid import UUID


def user_turn_id(call_sid: str, turn: int) -> str:
    """The caller's words of one TwiML-loop turn."""
    return f"{call_sid}:turn:{turn}:user"


def reply_turn_id(call_sid: str, turn: int) -> str:
    """The agent's reply of one TwiML-loop turn."""
    return f"{call_sid}:turn:{turn}:assistant"


def greeting_id(call_sid: str) -> str:
    return f"{call_sid}:greeting"


def handoff_summary_id(call_sid: str, turn: int) -> str:
    """What the person answering a warm hand-off was told about the call (the TwiML loop)."""
    return f"{call_sid}:handoff:{turn}:summary"


def session_key(call_sid: str | None, conversation_id: UUID) -> str:
    """What a LiveKit session's ids hang off: the call, or the conversation of a playground."""
    return call_sid or f"conv:{conversation_id}"


def session_item_id(session_key: str, item_id: str) -> str:
    """One final utterance of a LiveKit session, by the framework's chat item id."""
    return f"{session_key}:{item_id}"


def session_recording_id(call_sid: str | None, conversation_id: UUID) -> str:
    """The recording a LiveKit session made of itself."""
    return f"livekit:{call_sid or conversation_id}"


def livekit_call_sid(room_sid: str) -> str:
    """A SIP call that reached LiveKit without our gateway's CallSid (dialled in directly)."""
    return f"livekit:{room_sid}"
