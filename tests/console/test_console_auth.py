"""Signing in to the console over plain HTTP: links, the session cookie, roles, 401/403/404."""

from __future__ import annotations

from pathlib import Path

import httpx

from shared.settings import Settings
from tests.conftest import JWT_TEST_SECRET, PUBLIC_BASE_URL
from tests.console.conftest import OUTSIDER, OWNER, VIEWER, Demo, token
from tests.support.gateway import running_gateway
from tests.test_cli import ok_json, wassla
from webhook_gateway.auth import CONSOLE_HEADER, SESSION_COOKIE


async def _signed_in(client: httpx.AsyncClient, user: str) -> None:
    response = await client.get("/console/login", params={"token": token(user)})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console"


async def test_root_redirects_to_the_console(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/console"


async def test_without_a_cookie_the_console_asks_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/console")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/html")
    assert "You are not signed in." in response.text
    assert "wassla console-link --user" in response.text


async def test_a_sign_in_link_sets_an_httponly_session_cookie(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    response = await client.get("/console/login", params={"token": token(OWNER)})
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = await client.get("/console")
    # A member of one workspace lands on its inbox.
    assert home.status_code == 303
    assert home.headers["location"] == f"/console/w/{demo.workspace.id}/inbox"
    inbox = await client.get(home.headers["location"])
    assert inbox.status_code == 200
    assert "Acme Tea" in inbox.text


async def test_an_expired_link_is_refused(client: httpx.AsyncClient, demo: Demo) -> None:
    expired = token(OWNER, ttl_seconds=-3600)
    response = await client.get("/console/login", params={"token": expired})
    assert response.status_code == 401
    assert "expired" in response.text
    assert SESSION_COOKIE not in client.cookies


async def test_a_forged_link_is_refused(client: httpx.AsyncClient, demo: Demo) -> None:
    forged = token(OWNER, secret="not-the-server-secret-0123456789abcdef0123456789")
    response = await client.get("/console/login", params={"token": forged})
    assert response.status_code == 401
    assert "not valid" in response.text
    assert SESSION_COOKIE not in client.cookies


async def test_a_forged_cookie_is_refused_and_cleared(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    forged = token(OWNER, secret="not-the-server-secret-0123456789abcdef0123456789")
    client.cookies.set(SESSION_COOKIE, forged)
    response = await client.get(f"/console/w/{demo.workspace.id}/inbox")
    assert response.status_code == 401
    assert "no longer valid" in response.text
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]


async def test_another_workspace_is_not_found(client: httpx.AsyncClient, demo: Demo) -> None:
    await _signed_in(client, OUTSIDER)
    for path in ("inbox", "channels", "billing", "events", "inbox/rows", "billing/live"):
        response = await client.get(f"/console/w/{demo.workspace.id}/{path}")
        assert response.status_code == 404, path
        assert "Acme Tea" not in response.text
    assert (await client.get(f"/console/w/{demo.other.id}/inbox")).status_code == 200


async def test_a_malformed_workspace_id_is_a_page_that_does_not_exist(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    await _signed_in(client, OWNER)
    response = await client.get("/console/w/not-a-uuid/inbox")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_the_channels_api_takes_the_cookie_only_with_the_console_header(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    await _signed_in(client, OWNER)
    api = f"/api/workspaces/{demo.workspace.id}/channels"
    assert (await client.get(api)).status_code == 200
    body = {"kind": "voice", "phone_number": "+15557654321"}
    # A cross-site form could send the cookie, never a custom header: refused.
    assert (await client.post(api, json=body)).status_code == 401
    response = await client.post(api, json=body, headers={CONSOLE_HEADER: "1"})
    assert response.status_code == 201, response.text


async def test_a_viewer_sees_channels_without_forms_and_cannot_change_them(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    await _signed_in(client, VIEWER)
    page = await client.get(f"/console/w/{demo.workspace.id}/channels")
    assert page.status_code == 200
    assert demo.sms.phone_number in page.text
    assert '<form class="channel-form"' not in page.text
    assert "Disconnect" not in page.text
    assert "can see the channels" in page.text
    api = f"/api/workspaces/{demo.workspace.id}/channels"
    headers = {CONSOLE_HEADER: "1"}
    connect = await client.post(
        api, json={"kind": "voice", "phone_number": "+15557654321"}, headers=headers
    )
    assert connect.status_code == 403
    disconnect = await client.delete(f"{api}/{demo.sms.id}", headers=headers)
    assert disconnect.status_code == 403


async def test_console_link_prints_a_link_that_signs_the_member_in(
    client: httpx.AsyncClient, demo: Demo, pg_dsn: str, data_dir: Path
) -> None:
    env = {"WASSLA_JWT_SECRET": JWT_TEST_SECRET, "PUBLIC_BASE_URL": PUBLIC_BASE_URL}
    link = ok_json(pg_dsn, data_dir, "console-link", "--user", VIEWER, env=env)["link"]
    assert link.startswith(PUBLIC_BASE_URL + "/console/login?token=")
    response = await client.get(link)
    assert response.status_code == 303
    inbox = await client.get(f"/console/w/{demo.workspace.id}/inbox")
    assert inbox.status_code == 200
    refused = wassla(pg_dsn, data_dir, "console-link", "--user", "nobody", env=env)
    assert refused.returncode == 2
    assert "member of no workspace" in refused.stderr


async def test_without_an_openai_key_every_page_says_the_agent_cannot_think(
    settings: Settings, demo: Demo
) -> None:
    keyless = settings.model_copy(deep=True)
    keyless.openai.api_key = None
    async with running_gateway(keyless) as (_, client):
        await _signed_in(client, OWNER)
        page = await client.get(f"/console/w/{demo.workspace.id}/inbox")
        assert "The agent cannot think" in page.text
        assert "OPENAI_BASE_URL" in page.text
        assert "The agent cannot think" in (await client.get("/console/signed-out")).text
    async with running_gateway(settings) as (_, client):
        await _signed_in(client, OWNER)
        page = await client.get(f"/console/w/{demo.workspace.id}/inbox")
        assert "The agent cannot think" not in page.text


async def test_signing_out_clears_the_session(client: httpx.AsyncClient, demo: Demo) -> None:
    await _signed_in(client, OWNER)
    assert (await client.get(f"/console/w/{demo.workspace.id}/inbox")).status_code == 200
    response = await client.post("/console/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/signed-out"
    assert SESSION_COOKIE not in client.cookies
    assert (await client.get(f"/console/w/{demo.workspace.id}/inbox")).status_code == 401


def _paid_actions(demo: Demo) -> list[tuple[str, dict[str, str]]]:
    """The console's two writes that start paid work: a playground call and a text."""
    ws = f"/console/w/{demo.workspace.id}"
    text = {"channel_id": str(demo.sms.id), "contact": "+15550001111", "body": "Hi"}
    return [(f"{ws}/talk/session", {"agent_id": str(demo.agent.id)}), (f"{ws}/text/send", text)]


async def test_talk_and_text_need_the_console_header_and_a_member_who_may_change(
    client: httpx.AsyncClient, demo: Demo
) -> None:
    for path, body in _paid_actions(demo):
        await _signed_in(client, OWNER)
        # A cross-site form could send the cookie, never a custom header: refused.
        no_header = await client.post(path, json=body)
        assert no_header.status_code == 403, (path, no_header.text)
        assert CONSOLE_HEADER in no_header.text
        await _signed_in(client, VIEWER)
        viewer = await client.post(path, json=body, headers={CONSOLE_HEADER: "1"})
        assert viewer.status_code == 403, (path, viewer.text)
        assert "can look but not change" in viewer.text
        await _signed_in(client, OUTSIDER)
        outsider = await client.post(path, json=body, headers={CONSOLE_HEADER: "1"})
        assert outsider.status_code == 404, (path, outsider.text)


async def test_text_your_agent_is_refused_outside_development(
    settings: Settings, demo: Demo
) -> None:
    production = settings.changed({"env": "production"})
    async with running_gateway(production) as (_, client):
        await _signed_in(client, OWNER)
        path, body = _paid_actions(demo)[1]
        response = await client.post(path, json=body, headers={CONSOLE_HEADER: "1"})
        assert response.status_code == 403, response.text
        assert "development and test installations only" in response.text
        page = await client.get(f"/console/w/{demo.workspace.id}/text")
        assert "development and test installations only" in page.text


async def test_a_session_cookie_is_not_a_sign_in_link(client: httpx.AsyncClient) -> None:
    await _signed_in(client, OWNER)
    session = client.cookies[SESSION_COOKIE]
    # Else a session would renew itself forever, and a stolen cookie would never expire.
    renewed = await client.get("/console/login", params={"token": session})
    assert renewed.status_code == 401
    assert "it is a session, not a link" in renewed.text
