"""The dependency every Twilio webhook passes through, checked against Twilio's own published
signature vectors and requests signed with the `twilio` library's RequestValidator."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI
from starlette.datastructures import FormData

from shared.settings import Settings
from tests.conftest import PUBLIC_BASE_URL
from tests.support.twilio_signing import sign
from webhook_gateway.twilio_signature import MAX_BODY_BYTES, TwilioRequestDep, parse_form

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def echo_app(settings: Settings) -> FastAPI:
    """A route behind the real dependency that shows what it parsed."""
    app = FastAPI()
    app.state.gateway = SimpleNamespace(services=SimpleNamespace(settings=settings))

    @app.post("/{path:path}")
    async def echo(req: TwilioRequestDep) -> dict[str, Any]:
        return {"form": req.fields, "json": req.json_body, "url": req.url}

    return app


@pytest.fixture
async def echo(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=echo_app(settings))
    # The request arrives on the internal address, as behind Fly's TLS proxy.
    async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.5:8080") as c:
        yield c


async def test_twilios_published_vector_is_accepted(settings: Settings) -> None:
    settings = settings.changed(
        {"twilio.auth_token": "12345", "public_base_url": "https://mycompany.com"}
    )
    transport = httpx.ASGITransport(app=echo_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8080") as c:
        params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309",
                  "To": "+18005551212", "Caller": "+14158675309"}  # fmt: skip
        ok = await c.post(
            "/myapp.php?foo=1&bar=2",
            data=params,
            headers={"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        )
        repeated = await c.post(
            "/myapp.php?foo=1&bar=2",
            content=b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234",
            headers={**FORM, "X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="},
        )
        body = '{"property": "value", "boolean": true}'
        digest = hashlib.sha256(body.encode()).hexdigest()
        assert digest == "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        as_json = await c.post(
            f"/myapp.php?foo=1&bar=2&bodySHA256={digest}",
            content=body.encode(),
            headers={"Content-Type": "application/json",
                     "X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="},
        )  # fmt: skip
    assert (ok.status_code, repeated.status_code, as_json.status_code) == (200, 200, 200)
    assert as_json.json()["json"] == {"property": "value", "boolean": True}


async def test_signature_is_checked_against_the_public_url_not_the_internal_one(
    echo: httpx.AsyncClient,
) -> None:
    params = {"MessageSid": "SM1", "Body": "hi"}
    public = await echo.post(
        "/twilio-sms",
        data=params,
        headers={"X-Twilio-Signature": sign(f"{PUBLIC_BASE_URL}/twilio-sms", params)},
    )
    internal = await echo.post(
        "/twilio-sms",
        data=params,
        headers={"X-Twilio-Signature": sign("http://10.0.0.5:8080/twilio-sms", params)},
    )
    assert (public.status_code, internal.status_code) == (200, 403)
    assert public.json()["url"] == f"{PUBLIC_BASE_URL}/twilio-sms"


async def test_raw_query_string_is_signed_as_sent(echo: httpx.AsyncClient) -> None:
    params = {"MessageSid": "SM1"}
    query = "reply=7&b=a+b%20c&a=1"
    as_sent = await echo.post(
        f"/twilio-sms/status?{query}",
        data=params,
        headers={
            "X-Twilio-Signature": sign(f"{PUBLIC_BASE_URL}/twilio-sms/status?{query}", params)
        },
    )
    reordered = await echo.post(
        f"/twilio-sms/status?{query}",
        data=params,
        headers={"X-Twilio-Signature": sign(
            f"{PUBLIC_BASE_URL}/twilio-sms/status?a=1&b=a+b%20c&reply=7", params)},
    )  # fmt: skip
    assert (as_sent.status_code, reordered.status_code) == (200, 403)


async def test_repeated_form_keys_are_kept_and_all_signed(echo: httpx.AsyncClient) -> None:
    url = f"{PUBLIC_BASE_URL}/twilio-sms"
    pairs = [("MediaUrl", "https://a.example/1"), ("MediaUrl", "https://a.example/2"),
             ("Body", "")]  # fmt: skip
    signature = sign(url, FormData(pairs))  # type: ignore[arg-type]
    content = httpx.QueryParams(pairs).__str__().encode()
    ok = await echo.post(
        "/twilio-sms", content=content, headers={**FORM, "X-Twilio-Signature": signature}
    )
    dropped = await echo.post(
        "/twilio-sms",
        content=b"MediaUrl=https%3A%2F%2Fa.example%2F1&Body=",
        headers={**FORM, "X-Twilio-Signature": signature},
    )
    assert ok.status_code == 200 and dropped.status_code == 403
    assert ok.json()["form"] == [[k, v] for k, v in pairs]


async def test_json_body_must_match_its_body_sha256(echo: httpx.AsyncClient) -> None:
    body = json.dumps({"MessageSid": "SM1", "Body": "مرحبا 👋"}).encode()
    digest = hashlib.sha256(body).hexdigest()
    url = f"{PUBLIC_BASE_URL}/hook?bodySHA256={digest}"
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": sign(url, {})}
    ok = await echo.post(f"/hook?bodySHA256={digest}", content=body, headers=headers)
    tampered = await echo.post(
        f"/hook?bodySHA256={digest}", content=body.replace(b"SM1", b"SM2"), headers=headers
    )
    no_hash = await echo.post(
        "/hook",
        content=body,
        headers={**headers, "X-Twilio-Signature": sign(f"{PUBLIC_BASE_URL}/hook", {})},
    )
    assert (ok.status_code, tampered.status_code, no_hash.status_code) == (200, 403, 403)
    assert ok.json()["json"]["Body"] == "مرحبا 👋"


async def test_unsigned_forged_and_empty_signatures_get_403(echo: httpx.AsyncClient) -> None:
    params = {"MessageSid": "SM1", "Body": "hi"}
    url = f"{PUBLIC_BASE_URL}/twilio-sms"
    unsigned = await echo.post("/twilio-sms", data=params)
    empty = await echo.post("/twilio-sms", data=params, headers={"X-Twilio-Signature": ""})
    forged = await echo.post(
        "/twilio-sms", data=params, headers={"X-Twilio-Signature": sign(url, params, "other")}
    )
    assert [r.status_code for r in (unsigned, empty, forged)] == [403, 403, 403]


async def test_oversize_bodies_get_413_declared_or_streamed(echo: httpx.AsyncClient) -> None:
    big = b"Body=" + b"a" * MAX_BODY_BYTES

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    declared = await echo.post("/twilio-sms", content=big, headers=FORM)
    streamed = await echo.post("/twilio-sms", content=chunks(), headers=FORM)
    assert (declared.status_code, streamed.status_code) == (413, 413)


@pytest.mark.parametrize("content_type", ["text/xml", "multipart/form-data; boundary=x", ""])
async def test_wrong_content_type_gets_415(echo: httpx.AsyncClient, content_type: str) -> None:
    response = await echo.post(
        "/twilio-sms", content=b"Body=hi", headers={"Content-Type": content_type}
    )
    assert response.status_code == 415


@pytest.mark.parametrize("content", [b"Body", b"Body=hi&&x", b"Body=\xff\xfe"])
async def test_malformed_form_gets_400(echo: httpx.AsyncClient, content: bytes) -> None:
    url = f"{PUBLIC_BASE_URL}/twilio-sms"
    response = await echo.post(
        "/twilio-sms", content=content, headers={**FORM, "X-Twilio-Signature": sign(url, {})}
    )
    assert response.status_code == 400


async def test_missing_auth_token_refuses_every_webhook_with_503(settings: Settings) -> None:
    unset = settings.changed({"twilio.auth_token": None})
    transport = httpx.ASGITransport(app=echo_app(unset))
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC_BASE_URL) as c:
        response = await c.post("/twilio-sms", data={"MessageSid": "SM1"})
    assert response.status_code == 503


@pytest.mark.parametrize(
    "body",
    [
        "",
        "a=1&b=%2B15551234567&c=hello+world&d=&e=%F0%9F%91%8B&a=2",
        "x%20y=z&x+y=w",
        "=empty-name",
        "a=b=c",
        "Body=100%25+sure%3F&Body=%D9%85%D8%B1%D8%AD%D8%A8%D8%A7",
        "bad=%zz&worse=%ff%fe",
        "a=1&&b=2",
        "a=1&",
        "novalue",
    ],
)
def test_form_parsing_matches_the_standard_library(body: str) -> None:
    try:
        expected: object = parse_qsl(body, keep_blank_values=True, strict_parsing=bool(body))
    except ValueError:
        expected = ValueError
    try:
        fields, params = parse_form(body)
        got: object = fields
    except ValueError:
        got = ValueError
    assert got == expected
    if got is not ValueError:
        assert params == {k: [v for key, v in fields if key == k] for k, _ in fields}
