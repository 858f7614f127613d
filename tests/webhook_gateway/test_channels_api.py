"""The Channels API as the Channels page uses it: real app, real Postgres, real tokens."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import jwt
import pytest

from shared import channels, routing, workspaces
from shared.models import ChannelKind, Role, Workspace
from shared.settings import Settings
from tests.conftest import JWT_TEST_SECRET, PUBLIC_BASE_URL
from tests.standins.twilio_api import TwilioStandIn
from tests.support import factories
from tests.support.gateway import running_gateway

OWNER = "user-owner"
NUMBER = "+15551234567"
OTHER_NUMBER = "+15557654321"


def token(user: str = OWNER, *, secret: str = JWT_TEST_SECRET, **claims: Any) -> str:
    payload: dict[str, Any] = {"sub": user, "exp": int(time.time()) + 3600, **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, "HS256")


def auth(user: str = OWNER, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, **claims)}"}


def url(workspace_id: UUID, suffix: str = "") -> str:
    return f"/api/workspaces/{workspace_id}/channels{suffix}"


async def member_workspace(
    pool: asyncpg.Pool, *, role: Role = Role.OWNER, user: str = OWNER, plan: str = "starter"
) -> Workspace:
    async with pool.acquire() as conn:
        workspace = await factories.workspace(conn, plan=plan)
        await workspaces.add_member(conn, workspace.id, user, role)
    return workspace


async def active_channels(pool: asyncpg.Pool, workspace_id: UUID) -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        found = await channels.list_channels(conn, workspace_id, active_only=True)
    return [(c.kind, c.phone_number) for c in found]


def tile(body: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [t for t in body["tiles"] if t["kind"] == kind]
    return found


# --- Tiles -----------------------------------------------------------------------------


async def test_tiles_list_sms_and_voice_unconnected_with_the_urls_to_paste(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    response = await client.get(url(workspace.id), headers=auth())
    assert response.status_code == 200
    body = response.json()
    assert [t["kind"] for t in body["tiles"]] == ["sms", "voice"]
    sms, voice = tile(body, "sms"), tile(body, "voice")
    assert sms["connected"] is False and sms["phone_number"] is None and sms["agent"] is None
    assert sms["starter_required"] is False
    assert sms["webhook_url"] == f"{PUBLIC_BASE_URL}/twilio-sms"
    assert voice["webhook_url"] == f"{PUBLIC_BASE_URL}/twilio-voice"
    assert voice["connected"] is False


async def test_tiles_show_the_connected_number_and_its_bound_agent(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        agent = await factories.agent(conn, workspace.id, name="Layla")
        channel = await factories.channel(conn, workspace.id, number=NUMBER, agent_id=agent.id)
    body = (await client.get(url(workspace.id), headers=auth())).json()
    sms = tile(body, "sms")
    assert sms["connected"] is True
    assert sms["channel_id"] == str(channel.id)
    assert sms["phone_number"] == NUMBER
    assert sms["agent"] == {"id": str(agent.id), "name": "Layla"}
    assert sms["webhook_url"].endswith("/twilio-sms")
    assert tile(body, "voice")["connected"] is False


async def test_tiles_on_a_trial_plan_say_starter_required_instead_of_a_form(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool, plan="trial")
    body = (await client.get(url(workspace.id), headers=auth())).json()
    assert body["plan"] == "trial"
    for kind in ("sms", "voice"):
        assert tile(body, kind)["starter_required"] is True
        assert tile(body, kind)["webhook_url"] is None


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.VIEWER, Role.ADMIN])
async def test_every_member_role_may_read_the_tiles(
    client: httpx.AsyncClient, pool: asyncpg.Pool, role: Role
) -> None:
    workspace = await member_workspace(pool, role=role, user="someone")
    response = await client.get(url(workspace.id), headers=auth("someone"))
    assert response.status_code == 200


async def test_non_members_and_unknown_workspaces_get_the_same_404(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    stranger = await client.get(url(workspace.id), headers=auth("stranger"))
    unknown = await client.get(url(uuid4()), headers=auth())
    assert stranger.status_code == unknown.status_code == 404
    assert "not found" in stranger.json()["detail"]


# --- Connect ---------------------------------------------------------------------------


async def test_connect_normalises_the_number_to_e164_and_routing_finds_it(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        agent = await factories.agent(conn, workspace.id)
    response = await client.post(
        url(workspace.id),
        headers=auth(),
        json={"kind": "sms", "phone_number": "+1 (555) 123-4567", "agent_id": str(agent.id)},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["phone_number"] == NUMBER
    assert body["kind"] == "sms" and body["active"] is True
    assert body["agent"]["id"] == str(agent.id)
    assert body["webhook_url"] == f"{PUBLIC_BASE_URL}/twilio-sms"
    async with pool.acquire() as conn:
        target = await routing.resolve_inbound(conn, ChannelKind.SMS, NUMBER)
    assert target is not None and str(target.channel.id) == body["id"]


async def test_reconnecting_the_same_number_in_the_same_workspace_keeps_one_channel(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    first = await client.post(
        url(workspace.id), headers=auth(), json={"kind": "voice", "phone_number": NUMBER}
    )
    again = await client.post(
        url(workspace.id), headers=auth(), json={"kind": "voice", "phone_number": NUMBER}
    )
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert await active_channels(pool, workspace.id) == [("voice", NUMBER)]


@pytest.mark.parametrize(
    ("raw", "friendly"),
    [
        ("5551234567", "needs a plus sign and country code"),
        ("(555) 123-4567", "needs a plus sign and country code"),
        ("+0551234567", "country code is missing"),
    ],
)
async def test_connect_without_plus_or_country_code_gets_a_friendly_422(
    client: httpx.AsyncClient, pool: asyncpg.Pool, raw: str, friendly: str
) -> None:
    workspace = await member_workspace(pool)
    response = await client.post(
        url(workspace.id), headers=auth(), json={"kind": "sms", "phone_number": raw}
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert friendly in detail
    assert "+14155552671" in detail  # shows the format to use
    assert await active_channels(pool, workspace.id) == []


async def test_connect_on_a_plan_without_the_channel_gets_402(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool, plan="trial")
    response = await client.post(
        url(workspace.id), headers=auth(), json={"kind": "sms", "phone_number": NUMBER}
    )
    assert response.status_code == 402
    assert "Starter" in response.json()["detail"]
    assert await active_channels(pool, workspace.id) == []


async def test_connect_a_number_active_in_another_workspace_gets_409_until_it_is_freed(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        elsewhere = await factories.workspace(conn, name="Other")
        theirs = await factories.channel(conn, elsewhere.id, number=NUMBER)
    body = {"kind": "sms", "phone_number": NUMBER}
    response = await client.post(url(workspace.id), headers=auth(), json=body)
    assert response.status_code == 409
    assert NUMBER in response.json()["detail"]
    assert await active_channels(pool, workspace.id) == []

    async with pool.acquire() as conn:
        await channels.disconnect_channel(conn, theirs.id)
    freed = await client.post(url(workspace.id), headers=auth(), json=body)
    assert freed.status_code == 201


async def test_connect_with_an_agent_of_another_workspace_is_not_found(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        elsewhere = await factories.workspace(conn, name="Other")
        foreign_agent = await factories.agent(conn, elsewhere.id)
    response = await client.post(
        url(workspace.id),
        headers=auth(),
        json={"kind": "sms", "phone_number": NUMBER, "agent_id": str(foreign_agent.id)},
    )
    assert response.status_code == 404
    assert await active_channels(pool, workspace.id) == []


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"",
        b"[]",
        b'"sms"',
        b'{"kind": "fax", "phone_number": "+15551234567"}',
        b'{"kind": "SMS ", "phone_number": "+15551234567"}',
        b'{"kind": 1, "phone_number": "+15551234567"}',
        b'{"kind": "sms"}',
        b'{"kind": "sms", "phone_number": null}',
        b'{"kind": "sms", "phone_number": "+15551234567", "agent_id": "not-a-uuid"}',
        b'{"kind": "sms", "number": "+15551234567"}',
        b'{"kind": "sms", "phone_number": "+1555\xff"}',
    ],
)
async def test_malformed_bodies_and_unknown_kinds_get_422_not_500(
    client: httpx.AsyncClient, pool: asyncpg.Pool, content: bytes
) -> None:
    workspace = await member_workspace(pool)
    response = await client.post(
        url(workspace.id),
        headers={**auth(), "Content-Type": "application/json"},
        content=content,
    )
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)
    assert await active_channels(pool, workspace.id) == []


async def test_an_oversized_body_gets_413(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    workspace = await member_workspace(pool)
    response = await client.post(
        url(workspace.id),
        headers=auth(),
        json={"kind": "sms", "phone_number": NUMBER, "padding": "x" * 20_000},
    )
    assert response.status_code == 413


# --- Roles -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.VIEWER])
async def test_support_and_viewer_roles_cannot_connect_change_disconnect_or_configure(
    client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn, role: Role
) -> None:
    workspace = await member_workspace(pool, role=role, user="helper")
    async with pool.acquire() as conn:
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
    twilio_standin.numbers[NUMBER] = "PN" + "1" * 32
    headers = auth("helper")
    attempts = [
        await client.post(
            url(workspace.id), headers=headers, json={"kind": "voice", "phone_number": NUMBER}
        ),
        await client.patch(
            url(workspace.id, f"/{channel.id}"),
            headers=headers,
            json={"phone_number": OTHER_NUMBER},
        ),
        await client.delete(url(workspace.id, f"/{channel.id}"), headers=headers),
        await client.post(url(workspace.id, f"/{channel.id}/configure-twilio"), headers=headers),
        # Forbidden is decided before the body is read: a bad body still gets 403.
        await client.post(url(workspace.id), headers=headers, content=b"{"),
    ]
    assert [r.status_code for r in attempts] == [403] * len(attempts)
    assert "owner or admin" in attempts[0].json()["detail"]
    assert await active_channels(pool, workspace.id) == [("sms", NUMBER)]
    assert twilio_standin.number_updates == []


async def test_an_admin_may_connect(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    workspace = await member_workspace(pool, role=Role.ADMIN, user="admin")
    response = await client.post(
        url(workspace.id), headers=auth("admin"), json={"kind": "sms", "phone_number": NUMBER}
    )
    assert response.status_code == 201


async def test_non_members_cannot_connect_and_learn_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    response = await client.post(
        url(workspace.id), headers=auth("stranger"), json={"kind": "sms", "phone_number": NUMBER}
    )
    assert response.status_code == 404
    assert await active_channels(pool, workspace.id) == []


# --- Change and disconnect ---------------------------------------------------------------


async def test_patch_changes_the_number_and_routing_follows(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
    response = await client.patch(
        url(workspace.id, f"/{channel.id}"),
        headers=auth(),
        json={"phone_number": "+1 555 765 4321"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["phone_number"] == OTHER_NUMBER
    async with pool.acquire() as conn:
        new = await routing.resolve_inbound(conn, ChannelKind.SMS, OTHER_NUMBER)
        old = await routing.resolve_inbound(conn, ChannelKind.SMS, NUMBER)
    assert new is not None and new.channel.id == channel.id
    assert old is None


async def test_patch_binds_and_unbinds_the_agent_and_keeps_the_number(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        agent = await factories.agent(conn, workspace.id, name="Omar")
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
    path = url(workspace.id, f"/{channel.id}")
    bound = await client.patch(path, headers=auth(), json={"agent_id": str(agent.id)})
    assert bound.status_code == 200
    assert bound.json()["agent"] == {"id": str(agent.id), "name": "Omar"}
    assert bound.json()["phone_number"] == NUMBER
    unbound = await client.patch(path, headers=auth(), json={"agent_id": None})
    assert unbound.status_code == 200
    assert unbound.json()["agent"] is None
    async with pool.acquire() as conn:
        assert await channels.bound_agent_id(conn, channel.id) is None


async def test_patch_to_a_number_active_elsewhere_gets_409_and_changes_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
        elsewhere = await factories.workspace(conn, name="Other")
        await factories.channel(conn, elsewhere.id, number=OTHER_NUMBER)
    response = await client.patch(
        url(workspace.id, f"/{channel.id}"), headers=auth(), json={"phone_number": OTHER_NUMBER}
    )
    assert response.status_code == 409
    assert await active_channels(pool, workspace.id) == [("sms", NUMBER)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "nothing to change"),
        ({"phone_number": None}, "cannot be null"),
        ({"phone_number": "5557654321"}, "plus sign and country code"),
        ({"kind": "voice"}, "kind"),
    ],
)
async def test_patch_with_nothing_valid_to_change_gets_422(
    client: httpx.AsyncClient, pool: asyncpg.Pool, body: dict[str, Any], expected: str
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
    response = await client.patch(url(workspace.id, f"/{channel.id}"), headers=auth(), json=body)
    assert response.status_code == 422
    assert expected in response.json()["detail"]
    assert await active_channels(pool, workspace.id) == [("sms", NUMBER)]


async def test_patch_a_number_after_a_downgrade_to_trial_gets_402(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
        await workspaces.update_workspace(conn, workspace.id, plan="trial")
    response = await client.patch(
        url(workspace.id, f"/{channel.id}"), headers=auth(), json={"phone_number": OTHER_NUMBER}
    )
    assert response.status_code == 402
    assert await active_channels(pool, workspace.id) == [("sms", NUMBER)]


async def test_delete_deactivates_so_routing_finds_nothing_and_repeating_it_is_harmless(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        channel = await factories.channel(conn, workspace.id, number=NUMBER)
    path = url(workspace.id, f"/{channel.id}")
    assert (await client.delete(path, headers=auth())).status_code == 204
    async with pool.acquire() as conn:
        assert await routing.resolve_inbound(conn, ChannelKind.SMS, NUMBER) is None
    assert (await client.delete(path, headers=auth())).status_code == 204
    sms = tile((await client.get(url(workspace.id), headers=auth())).json(), "sms")
    assert sms["connected"] is False
    # A disconnected channel is history: it cannot be edited back to life by PATCH.
    patched = await client.patch(path, headers=auth(), json={"phone_number": OTHER_NUMBER})
    assert patched.status_code == 409
    assert "connect" in patched.json()["detail"]


async def test_a_channel_of_another_workspace_cannot_be_touched_through_this_workspace(
    client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    mine = await member_workspace(pool)
    async with pool.acquire() as conn:
        theirs = await factories.workspace(conn, name="Other")
        their_channel = await factories.channel(conn, theirs.id, number=NUMBER)
    twilio_standin.numbers[NUMBER] = "PN" + "2" * 32
    path = url(mine.id, f"/{their_channel.id}")
    attempts = [
        await client.patch(path, headers=auth(), json={"phone_number": OTHER_NUMBER}),
        await client.delete(path, headers=auth()),
        await client.post(path + "/configure-twilio", headers=auth()),
    ]
    assert [r.status_code for r in attempts] == [404, 404, 404]
    assert await active_channels(pool, theirs.id) == [("sms", NUMBER)]
    assert twilio_standin.number_updates == []


async def test_an_unknown_channel_gets_404(client: httpx.AsyncClient, pool: asyncpg.Pool) -> None:
    workspace = await member_workspace(pool)
    path = url(workspace.id, f"/{uuid4()}")
    patched = await client.patch(path, headers=auth(), json={"phone_number": NUMBER})
    deleted = await client.delete(path, headers=auth())
    assert patched.status_code == deleted.status_code == 404


# --- Authentication ----------------------------------------------------------------------


async def test_a_request_without_a_token_gets_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    response = await client.get(url(workspace.id))
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and "invalid_token" not in challenge


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(f"Bearer {token(exp=int(time.time()) - 120)}", id="expired"),
        pytest.param(f"Bearer {token(secret='another-secret-' + 'x' * 32)}", id="forged"),
        pytest.param(f"Bearer {token(aud='anon')}", id="wrong-audience"),
        pytest.param(f"Bearer {token(exp=None)}", id="no-expiry"),
        pytest.param(f"Bearer {token(sub=None)}", id="no-subject"),
        pytest.param(f"Bearer {token(sub='')}", id="empty-subject"),
        pytest.param(
            "Bearer " + jwt.encode({"sub": OWNER, "exp": int(time.time()) + 60}, None, "none"),
            id="alg-none",
        ),
        pytest.param(
            "Bearer "
            + jwt.encode({"sub": OWNER, "exp": int(time.time()) + 60}, JWT_TEST_SECRET, "HS384"),
            id="other-algorithm",
        ),
        pytest.param("Bearer not.a.jwt", id="garbage"),
        pytest.param(f"Basic {token()}", id="wrong-scheme"),
        pytest.param("Bearer ", id="empty"),
    ],
)
async def test_expired_forged_or_malformed_tokens_get_401(
    client: httpx.AsyncClient, pool: asyncpg.Pool, header: str
) -> None:
    workspace = await member_workspace(pool)
    response = await client.get(url(workspace.id), headers={"Authorization": header})
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]
    written = await client.post(
        url(workspace.id),
        headers={"Authorization": header},
        json={"kind": "sms", "phone_number": NUMBER},
    )
    assert written.status_code == 401
    assert await active_channels(pool, workspace.id) == []


async def test_an_expired_token_is_told_to_sign_in_again(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    response = await client.get(url(workspace.id), headers=auth(exp=int(time.time()) - 120))
    assert "expired" in response.json()["detail"]


async def test_a_supabase_token_with_the_authenticated_audience_is_accepted(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    response = await client.get(
        url(workspace.id), headers=auth(aud="authenticated", role="authenticated")
    )
    assert response.status_code == 200


async def test_without_a_jwt_secret_the_api_answers_503_naming_the_setting(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    workspace = await member_workspace(pool)
    async with running_gateway(settings.changed({"jwt_secret": None})) as (_, client):
        response = await client.get(url(workspace.id), headers=auth())
    assert response.status_code == 503
    assert "WASSLA_JWT_SECRET" in response.json()["detail"]


# --- Configure Twilio --------------------------------------------------------------------


async def test_configure_twilio_points_an_sms_and_voice_number_at_our_webhooks(
    client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        sms = await factories.channel(conn, workspace.id, kind="sms", number=NUMBER)
        await factories.channel(conn, workspace.id, kind="voice", number=NUMBER)
    pn_sid = "PN" + "a" * 32
    twilio_standin.numbers[NUMBER] = pn_sid
    response = await client.post(url(workspace.id, f"/{sms.id}/configure-twilio"), headers=auth())
    assert response.status_code == 200, response.text
    assert response.json()["phone_number_sid"] == pn_sid
    expected = {
        "sid": pn_sid,
        "SmsUrl": f"{PUBLIC_BASE_URL}/twilio-sms",
        "SmsMethod": "POST",
        "VoiceUrl": f"{PUBLIC_BASE_URL}/twilio-voice",
        "VoiceMethod": "POST",
        "StatusCallback": f"{PUBLIC_BASE_URL}/twilio-voice/status",
        "StatusCallbackMethod": "POST",
    }
    assert twilio_standin.number_updates == [expected]


async def test_configure_twilio_on_an_sms_only_number_leaves_its_voice_setup_alone(
    client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        sms = await factories.channel(conn, workspace.id, kind="sms", number=NUMBER)
    twilio_standin.numbers[NUMBER] = "PN" + "b" * 32
    response = await client.post(url(workspace.id, f"/{sms.id}/configure-twilio"), headers=auth())
    assert response.status_code == 200
    (update,) = twilio_standin.number_updates
    assert update["SmsUrl"] == f"{PUBLIC_BASE_URL}/twilio-sms"
    assert not {"VoiceUrl", "StatusCallback"} & set(update)


async def test_configure_twilio_for_a_number_outside_the_twilio_account_gets_a_friendly_422(
    client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        sms = await factories.channel(conn, workspace.id, number=NUMBER)
    response = await client.post(url(workspace.id, f"/{sms.id}/configure-twilio"), headers=auth())
    assert response.status_code == 422
    assert "not a number of this server's Twilio account" in response.json()["detail"]
    assert twilio_standin.number_updates == []


async def test_configure_twilio_without_a_twilio_account_gets_503_naming_the_setting(
    settings: Settings, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        sms = await factories.channel(conn, workspace.id, number=NUMBER)
    twilio_standin.numbers[NUMBER] = "PN" + "c" * 32
    no_sid = settings.changed({"twilio.account_sid": None})
    async with running_gateway(no_sid) as (_, client):
        response = await client.post(
            url(workspace.id, f"/{sms.id}/configure-twilio"), headers=auth()
        )
    assert response.status_code == 503
    assert "TWILIO_ACCOUNT_SID" in response.json()["detail"]
    assert twilio_standin.number_updates == []


async def test_configure_twilio_of_a_disconnected_channel_gets_409(
    client: httpx.AsyncClient, pool: asyncpg.Pool, twilio_standin: TwilioStandIn
) -> None:
    workspace = await member_workspace(pool)
    async with pool.acquire() as conn:
        sms = await factories.channel(conn, workspace.id, number=NUMBER)
        await channels.disconnect_channel(conn, sms.id)
    twilio_standin.numbers[NUMBER] = "PN" + "d" * 32
    response = await client.post(url(workspace.id, f"/{sms.id}/configure-twilio"), headers=auth())
    assert response.status_code == 409
    assert twilio_standin.number_updates == []


async def test_tiles_name_the_agent_that_will_answer_when_none_is_bound(
    client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    from shared.models import Modality

    ws = await member_workspace(pool)
    async with pool.acquire() as conn:
        texter = await factories.agent(conn, ws.id, name="Texter", modality=Modality.TEXT)
        await factories.channel(conn, ws.id, kind="sms")
        await factories.channel(conn, ws.id, kind="voice")
    response = await client.get(url(ws.id), headers=auth())
    assert response.status_code == 200
    tiles = {t["kind"]: t for t in response.json()["tiles"]}
    assert tiles["sms"]["agent"] is None
    assert tiles["sms"]["answering_agent"] == {"id": str(texter.id), "name": "Texter"}
    # A text-only agent cannot take calls: the voice tile says nobody would answer.
    assert tiles["voice"]["answering_agent"] is None
