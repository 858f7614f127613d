"""LiveKit SIP configuration: the inbound trunk for our voice numbers and its dispatch rule.

Admin API configuration, not room logic. `sync_inbound_sip` makes LiveKit match the voice
numbers it is given (`shared.channels.voice_numbers`):

- one inbound trunk (found by name) whose numbers are every active voice channel's number,
  mapping our gateway's `X-Wassla-Call-Sid` header to the participant attribute
  `wassla.call_sid` (the worker continues the gateway's call row from it);
- one dispatch rule (found by name) that puts each caller in a room of their own with the
  worker's agent.

Running it again updates both in place; it never creates a second trunk or rule.

`sync_outbound_sip` does the same for the outbound trunk a warm hand-off dials the person
through (found by name, `LIVEKIT_SIP_OUTBOUND_TRUNK_NAME`; the worker looks it up with
`find_outbound_trunk` when a hand-off starts, so no trunk id needs configuring).
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


@dataclass(frozen=True)
class OutboundSetup:
    """The outbound trunk after a sync."""

    trunk_id: str
    address: str
    numbers: list[str]
    created: bool


_TRANSPORTS = {
    "auto": api.SIPTransport.SIP_TRANSPORT_AUTO,
    "udp": api.SIPTransport.SIP_TRANSPORT_UDP,
    "tcp": api.SIPTransport.SIP_TRANSPORT_TCP,
    "tls": api.SIPTransport.SIP_TRANSPORT_TLS,
}


def outbound_trunk(settings: Settings, numbers: list[str]) -> api.SIPOutboundTrunkInfo:
    """The trunk we want: the carrier's address and credentials, our caller IDs."""
    lk = settings.livekit
    assert lk.sip_outbound_address is not None
    return api.SIPOutboundTrunkInfo(
        name=lk.sip_outbound_trunk_name,
        address=lk.sip_outbound_address,
        transport=_TRANSPORTS[lk.sip_outbound_transport],
        # The person sees our number calling, the one set for hand-offs or our voice lines.
        numbers=[lk.sip_outbound_number] if lk.sip_outbound_number else numbers,
        auth_username=lk.sip_outbound_auth_username or "",
        auth_password=lk.sip_outbound_auth_password or "",
    )


async def find_outbound_trunk(lk: api.LiveKitAPI, name: str) -> api.SIPOutboundTrunkInfo | None:
    """The outbound trunk called `name` (the oldest id if an operator made two)."""
    listed = await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
    matches = sorted((t for t in listed.items if t.name == name), key=lambda t: t.sip_trunk_id)
    return matches[0] if matches else None


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


def _client(settings: Settings) -> api.LiveKitAPI:
    settings.require("livekit.url", "livekit.api_key", "livekit.api_secret")
    assert settings.livekit.url is not None
    return api.LiveKitAPI(
        url=settings.livekit.url,
        api_key=settings.livekit.api_key,
        api_secret=settings.livekit.api_secret,
    )


_SETUP_ERRORS: tuple[type[Exception], ...] = (api.ServerError, *TRANSPORT_ERRORS)


def _provider_error(exc: BaseException) -> Exception:
    """LiveKit's refusal or a transport failure as our provider error."""
    if isinstance(exc, api.ServerError):
        return ProviderStatusError(
            f"LiveKit refused the SIP setup: {exc.code}: {exc.message}",
            status=exc.status,
            retryable=exc.status >= 500,
            body=exc.message,
        )
    if never_sent(exc):
        return ProviderConnectionError(f"LiveKit unreachable: {exc!r}")
    return ProviderTimeoutError(f"LiveKit gave no whole answer: {exc!r}")


async def sync_inbound_sip(settings: Settings, numbers: list[str]) -> SipSetup:
    """Create or update the inbound trunk for `numbers` and its dispatch rule."""
    settings.require("livekit.url", "livekit.api_key", "livekit.api_secret")
    if not numbers:
        # A trunk without numbers would take calls to any number: refuse rather than open up.
        raise InvalidInput("no voice number is connected; connect a voice channel first")
    if not settings.livekit.sip_allowed_addresses and not settings.livekit.sip_auth_username:
        logger.warning("livekit_sip.open_trunk", extra={"reason": "no addresses and no auth"})
    lk = _client(settings)
    try:
        trunk, trunk_created = await _upsert_trunk(lk, inbound_trunk(settings, numbers))
        rule, rule_created = await _upsert_rule(lk, dispatch_rule(settings, trunk.sip_trunk_id))
    except _SETUP_ERRORS as exc:
        raise _provider_error(exc) from exc
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


async def sync_outbound_sip(settings: Settings, numbers: list[str]) -> OutboundSetup | None:
    """Create or update the outbound trunk; None when no outbound address is configured."""
    if not settings.livekit.sip_outbound_address:
        return None
    if not numbers and not settings.livekit.sip_outbound_number:
        raise InvalidInput(
            "the outbound trunk needs a caller ID: set LIVEKIT_SIP_OUTBOUND_NUMBER"
            " or connect a voice channel"
        )
    wanted = outbound_trunk(settings, numbers)
    lk = _client(settings)
    try:
        found = await find_outbound_trunk(lk, wanted.name)
        if found is None:
            trunk = await lk.sip.create_outbound_trunk(
                api.CreateSIPOutboundTrunkRequest(trunk=wanted)
            )
        else:
            trunk = await lk.sip.update_outbound_trunk(found.sip_trunk_id, wanted)
    except _SETUP_ERRORS as exc:
        raise _provider_error(exc) from exc
    finally:
        await lk.aclose()
    setup = OutboundSetup(
        trunk_id=trunk.sip_trunk_id,
        address=trunk.address,
        numbers=list(trunk.numbers),
        created=found is None,
    )
    logger.info(
        "livekit_sip.outbound_synced",
        extra={"trunk": setup.trunk_id, "address": setup.address,
               "numbers": len(setup.numbers), "created": setup.created},
    )  # fmt: skip
    return setup
