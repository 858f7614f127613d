"""A local Twilio for `wassla dev` without a Twilio account: the texts our agent sends land here.

It speaks Twilio's Messages API (2010-04-01) on loopback, so the product's own Twilio REST
client (shared/providers/twilio_rest.py) talks to it through TWILIO_API_BASE_URL exactly as it
talks to Twilio: Basic auth with the account sid and auth token, form-encoded creates, JSON
resources and Twilio's error shape (`code`, `message`, `more_info`, `status`). It then does
what Twilio does after accepting a text: it posts the signed status callbacks (`sent`, then
`delivered`), so the gateway settles and charges the reply as in production.

Texts are kept in a JSON-lines file under the data directory, so the console's phone view of
a contact (Text your agent, which lists them through the same client) survives a restart.
Nothing leaves the machine: there is no phone network behind it.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import uuid
from collections import deque
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

from shared.e164 import normalize_e164
from shared.errors import InvalidPhoneNumber
from shared.sms_segments import count_segments

logger = logging.getLogger("wassla.twilio_sandbox")

API_VERSION = "2010-04-01"
ACCOUNT_SID = "AC" + "0" * 32  # the sandbox's account when no Twilio account is configured
MAX_BODY_CHARS = 1600  # Twilio's own limit (error 21617)
_MAX_REQUEST_BYTES = 64 * 1024
_KEPT_MESSAGES = 5000  # in memory and reloaded at start; a dev phone needs no more
_CALLBACK_DELAY_SECONDS = 0.2  # between accepting a text and its `sent` callback


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


class TwilioSandbox:
    def __init__(self, *, account_sid: str, auth_token: str, store: Path) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self._expected_auth = "Basic " + base64.b64encode(
            f"{account_sid}:{auth_token}".encode()
        ).decode("ascii")
        self._store = store
        self._messages: deque[dict[str, Any]] = deque(maxlen=_KEPT_MESSAGES)
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.base_url = ""

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0: any free port); returns the base URL for TWILIO_API_BASE_URL."""
        await asyncio.to_thread(self._load)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = self._runner.addresses[0]
        self.base_url = f"http://{bound[0]}:{bound[1]}"
        logger.info("sandbox.started", extra={"url": self.base_url, "kept": len(self._messages)})
        return self.base_url

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    def _load(self) -> None:
        if not self._store.exists():
            return
        latest: dict[str, dict[str, Any]] = {}  # a status change appends the record again
        for line in self._store.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write
            if isinstance(record, dict) and isinstance(record.get("sid"), str):
                latest[record["sid"]] = record
        self._messages.extend(latest.values())

    async def _keep(self, record: dict[str, Any]) -> None:
        self._messages.append(record)
        await asyncio.to_thread(self._write, record)

    def _write(self, record: dict[str, Any]) -> None:
        self._store.parent.mkdir(parents=True, exist_ok=True)
        with self._store.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every kept text, oldest first."""
        return list(self._messages)

    # --- the API ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        prefix = f"/{API_VERSION}/Accounts/{{account_sid}}"
        app.router.add_post(prefix + "/Messages.json", self._create)
        app.router.add_get(prefix + "/Messages.json", self._list)
        app.router.add_get(prefix + "/Messages/{sid}.json", self._fetch)
        return app

    def _authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given, self._expected_auth) and (
            request.match_info["account_sid"] == self.account_sid
        )

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        form = await request.post()
        to, from_ = str(form.get("To", "")), str(form.get("From", ""))
        body = str(form.get("Body", ""))
        callback = str(form.get("StatusCallback", ""))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not from_:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return _error(400, 21617, "The message body exceeds the 1600 character limit.")
        try:
            to = normalize_e164(to)
        except InvalidPhoneNumber:
            return _error(400, 21211, f"The 'To' number {to[:40]} is not a valid phone number.")
        sid = "SM" + uuid.uuid4().hex
        record = self._resource(sid=sid, to=to, from_=from_, body=body, status="queued")
        await self._keep(record)
        logger.info("sandbox.text_recorded", extra={"message_sid": sid, "to": to, "from": from_})
        if callback.startswith(("http://", "https://")):
            task = asyncio.create_task(self._report_status(record, callback), name=sid)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response(record, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        to, from_ = request.query.get("To"), request.query.get("From")
        try:
            size = max(1, min(int(request.query.get("PageSize", "50")), 1000))
        except ValueError:
            return _error(400, 20001, "PageSize must be a number")
        found = [
            m
            for m in reversed(self._messages)  # newest first, as Twilio lists them
            if (to is None or m["to"] == to) and (from_ is None or m["from"] == from_)
        ][:size]
        uri = request.path_qs
        return web.json_response(
            {
                "messages": found,
                "page": 0,
                "page_size": size,
                "start": 0,
                "end": max(len(found) - 1, 0),
                "uri": uri,
                "first_page_uri": uri,
                "next_page_uri": None,
                "previous_page_uri": None,
            }
        )

    async def _fetch(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, 20003, "Authenticate")
        sid = request.match_info["sid"]
        for record in self._messages:
            if record["sid"] == sid:
                return web.json_response(record)
        return _error(404, 20404, f"The requested resource /Messages/{sid[:40]}.json was not found")

    def _resource(self, *, sid: str, to: str, from_: str, body: str, status: str) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": to,
            "from": from_,
            "body": body,
            "status": status,
            "num_segments": str(count_segments(body)),
            "num_media": "0",
            "direction": "outbound-api",
            "api_version": API_VERSION,
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "error_message": None,
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }

    # --- status callbacks ------------------------------------------------------------------

    async def _report_status(self, record: dict[str, Any], url: str) -> None:
        """`sent`, then `delivered`, each signed as Twilio signs its webhooks."""
        for status in ("sent", "delivered"):
            await asyncio.sleep(_CALLBACK_DELAY_SECONDS)
            record["status"] = status
            record["date_updated"] = format_datetime(datetime.now(UTC), usegmt=True)
            await asyncio.to_thread(self._write, record)
            fields = {
                "AccountSid": self.account_sid,
                "ApiVersion": API_VERSION,
                "From": record["from"],
                "To": record["to"],
                "MessageSid": record["sid"],
                "SmsSid": record["sid"],
                "MessageStatus": status,
                "SmsStatus": status,
                "NumSegments": record["num_segments"],
            }
            signature = RequestValidator(self._auth_token).compute_signature(url, fields)
            assert self._http is not None
            try:
                async with self._http.post(
                    url, data=fields, headers={"X-Twilio-Signature": signature}
                ) as answer:
                    outcome = answer.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning(
                    "sandbox.status_callback_failed",
                    extra={"message_sid": record["sid"], "status": status, "error": repr(exc)},
                )
                return
            logger.info(
                "sandbox.status_callback",
                extra={"message_sid": record["sid"], "status": status, "answer": outcome},
            )
