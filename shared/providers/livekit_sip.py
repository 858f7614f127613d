"""LiveKit SIP configuration: the inbound trunk for our voice numbers and its dispatch rule.

Admin API configuration, not room logic. `sync_inbound_sip` makes LiveKit match the voice
numbers it is given (`shared.channels.voice_numbers`):

- one inbound trunk (found by name) whose numbers are every active voice channel's number,
  mapping our gateway's `X-Wassla-Call-Sid` header to the participant attribute
  `wassla.call_sid` (the worker continues the gateway's call row from it);
- one dispatch rule (found by name) that puts each caller in a room of their own with the
  worker's agent.

Running it again updates both in place; it never creates a second trunk or rule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from livekit import api

from shared.errors import (
    InvalidInput,
    ProviderConnectionError,
    ProviderStatusError,
    ProviderTimeoutError,
)
from shared.providers.transport import TRANSPORT_ERRORS, never_sent
from shared.settings import Settings

logger = logging.getLogger("shared.providers.livekit_sip")

CALL_SID_HEADER = "X-Wassla-Call-Sid"
CALL_SID_ATTRIBUTE = "wassla.call_sid"


@dataclass(frozen=True)
class SipSetup:
    """What LiveKit holds after a sync."""

    trunk_id: str
    dispatch_rule_id: str
    numbers: list[str]
    trunk_created: bool
    rule_created: bool


def inbound_trunk(settings: Settings, numbers: list[str]) -> api.SIPInboundTrunkInfo:
    """The trunk we want: our numbers, who may call in, and the call-sid header mapping."""
    return api.SIPInboundTrunkInfo(
        name=settings.livekit.sip_trunk_name,
        numbers=numbers,
        allowed_addresses=settings.livekit.sip_allowed_addresses,
        auth_username=settings.livekit.sip_auth_username or "",
        auth_password=settings.livekit.sip_auth_password or "",
        headers_to_attributes={CALL_SID_HEADER: CALL_SID_ATTRIBUTE},
    )


def dispatch_rule(settings: Settings, trunk_id: str) -> api.SIPDispatchRuleInfo:
    """The rule we want: each caller alone in a fresh room, with our worker's agent."""
    return api.SIPDispatchRuleInfo(
        name=settings.livekit.sip_dispatch_rule_name,
        trunk_ids=[trunk_id],
        rule=api.SIPDispatchRule(
            dispatch_rule_individual=api.SIPDispatchRuleIndividual(
                room_prefix=settings.livekit.sip_room_prefix
            )
        ),
        room_config=api.RoomConfiguration(
            agents=[api.RoomAgentDispatch(agent_name=settings.worker.agent_name)]
        ),
    )


async def _find_trunk(lk: api.LiveKitAPI, name: str) -> api.SIPInboundTrunkInfo | None:
    listed = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    matches = sorted((t for t in listed.items if t.name == name), key=lambda t: t.sip_trunk_id)
    return matches[0] if matches else None


async def _find_rule(lk: api.LiveKitAPI, name: str) -> api.SIPDispatchRuleInfo | None:
    listed = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
    matches = sorted(
        (r for r in listed.items if r.name == name), key=lambda r: r.sip_dispatch_rule_id
    )
    return matches[0] if matches else None


async def _upsert_trunk(
    lk: api.LiveKitAPI, wanted: api.SIPInboundTrunkInfo
) -> tuple[api.SIPInboundTrunkInfo, bool]:
    found = await _find_trunk(lk, wanted.name)
    if found is None:
        trunk = await lk.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=wanted))
        return trunk, True
    return await lk.sip.update_inbound_trunk(found.sip_trunk_id, wanted), False


async def _upsert_rule(
    lk: api.LiveKitAPI, wanted: api.SIPDispatchRuleInfo
) -> tuple[api.SIPDispatchRuleInfo, bool]:
    found = await _find_rule(lk, wanted.name)
    if found is None:
        rule = await lk.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(dispatch_rule=wanted)
        )
        return rule, True
    return await lk.sip.update_dispatch_rule(found.sip_dispatch_rule_id, wanted), False


async def sync_inbound_sip(settings: Settings, numbers: list[str]) -> SipSetup:
    """Create or update the inbound trunk for `numbers` and its dispatch rule."""
    settings.require("livekit.url", "livekit.api_key", "livekit.api_secret")
    if not numbers:
        # A trunk without numbers would take calls to any number: refuse rather than open up.
        raise InvalidInput("no voice number is connected; connect a voice channel first")
    if not settings.livekit.sip_allowed_addresses and not settings.livekit.sip_auth_username:
        logger.warning("livekit_sip.open_trunk", extra={"reason": "no addresses and no auth"})
    assert settings.livekit.url is not None
    lk = api.LiveKitAPI(
        url=settings.livekit.url,
        api_key=settings.livekit.api_key,
        api_secret=settings.livekit.api_secret,
    )
    try:
        trunk, trunk_created = await _upsert_trunk(lk, inbound_trunk(settings, numbers))
        rule, rule_created = await _upsert_rule(lk, dispatch_rule(settings, trunk.sip_trunk_id))
    except api.ServerError as exc:
        raise ProviderStatusError(
            f"LiveKit refused the SIP setup: {exc.code}: {exc.message}",
            status=exc.status,
            retryable=exc.status >= 500,
            body=exc.message,
        ) from exc
    except TRANSPORT_ERRORS as exc:
        if never_sent(exc):
            raise ProviderConnectionError(f"LiveKit unreachable: {exc!r}") from exc
        raise ProviderTimeoutError(f"LiveKit gave no whole answer: {exc!r}") from exc
    finally:
        await lk.aclose()
    setup = SipSetup(
        trunk_id=trunk.sip_trunk_id,
        dispatch_rule_id=rule.sip_dispatch_rule_id,
        numbers=list(trunk.numbers),
        trunk_created=trunk_created,
        rule_created=rule_created,
    )
    logger.info(
        "livekit_sip.synced",
        extra={"trunk": setup.trunk_id, "rule": setup.dispatch_rule_id,
               "numbers": len(setup.numbers), "trunk_created": trunk_created,
               "rule_created": rule_created},
    )  # fmt: skip
    return setup
