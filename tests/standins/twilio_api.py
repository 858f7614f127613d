"""A local stand-in for Twilio's REST API (2010-04-01), speaking its real wire format.

Records every request our real client sends; tests script failures and recordings.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.standins.server import ThreadedServer


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
         "status": status},
        status_code=status,
    )  # fmt: skip


@dataclass(frozen=True)
class TwilioError:
    """An error answer with Twilio's own code, for failures a bare status cannot name."""

    status: int
    code: int
    message: str


UNSUBSCRIBED = TwilioError(400, 21610, "Attempt to send to unsubscribed recipient")
# Close the connection once the request is read, without an answer: Twilio may have sent it.
DROP = "drop"

MessageFailure = int | TwilioError | Literal["drop"]


@dataclass
class TwilioStandIn:
    account_sid: str
    auth_token: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    number_updates: list[dict[str, Any]] = field(default_factory=list)
    recording_fetches: list[str] = field(default_factory=list)
    recordings: dict[str, bytes] = field(default_factory=dict)  # RecordingSid -> audio
    numbers: dict[str, str] = field(default_factory=dict)  # E.164 -> PN sid
    # Scripted failures: HTTP statuses (or errors, or DROP) answering the next requests of
    # each kind.
    message_failures: list[MessageFailure] = field(default_factory=list)
    dropped_messages: list[dict[str, Any]] = field(default_factory=list)  # read, never answered
    recording_failures: list[int] = field(default_factory=list)
    message_delay: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadedServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return self.server.url

    def recording_url(self, recording_sid: str) -> str:
        """The RecordingUrl Twilio would post (no extension)."""
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def reset(self) -> None:
        with self._lock:
            for log in (
                self.messages,
                self.number_updates,
                self.recording_fetches,
                self.message_failures,
                self.dropped_messages,
                self.recording_failures,
            ):
                log.clear()  # fmt: skip
            self.recordings.clear()
            self.numbers.clear()

    def _authorized(self, request: Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def app(self) -> FastAPI:
        app = FastAPI()
        prefix = "/2010-04-01/Accounts/{account_sid}"

        @app.post(prefix + "/Messages.json")
        async def create_message(account_sid: str, request: Request) -> Response:
            if not self._authorized(request) or account_sid != self.account_sid:
                return _error(401, 20003, "Authenticate")
            form = dict((await request.form()).items())
            if self.message_delay:
                await asyncio.sleep(self.message_delay)
            with self._lock:
                failure = self.message_failures.pop(0) if self.message_failures else None
            if isinstance(failure, TwilioError):
                return _error(failure.status, failure.code, failure.message)
            if isinstance(failure, int):
                return _error(failure, 20500 if failure >= 500 else 21211, "scripted failure")
            body = str(form.get("Body", ""))
            if len(body) > 1600:
                return _error(400, 21617, "The concatenated message body exceeds 1600 characters")
            sid = _sid("SM")
            record = {"sid": sid, "to": form.get("To"), "from": form.get("From"), "body": body,
                      "status_callback": form.get("StatusCallback"), "at": time.time()}  # fmt: skip
            with self._lock:
                self.messages.append(record)
            return JSONResponse(
                {
                    "sid": sid, "account_sid": account_sid, "to": form.get("To"),
                    "from": form.get("From"), "body": body, "status": "queued",
                    "num_segments": "0", "direction": "outbound-api", "api_version": "2010-04-01",
                    "price": None, "error_code": None,
                    "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
                },
                status_code=201,
            )  # fmt: skip

        @app.get(prefix + "/Recordings/{name}")
        async def get_recording(account_sid: str, name: str, request: Request) -> Response:
            if not self._authorized(request):
                return _error(401, 20003, "Authenticate")
            with self._lock:
                self.recording_fetches.append(name)
                failure = self.recording_failures.pop(0) if self.recording_failures else None
            if failure:
                return _error(failure, 20500 if failure >= 500 else 20404, "scripted failure")
            sid, _, ext = name.partition(".")
            audio = self.recordings.get(sid)
            if audio is None:
                return _error(404, 20404, "The requested resource was not found")
            return Response(audio, media_type="audio/x-wav" if ext == "wav" else "audio/mpeg")

        @app.get(prefix + "/IncomingPhoneNumbers.json")
        async def list_numbers(account_sid: str, request: Request) -> Response:
            if not self._authorized(request):
                return _error(401, 20003, "Authenticate")
            wanted = request.query_params.get("PhoneNumber")
            found = [{"sid": sid, "phone_number": number}
                     for number, sid in self.numbers.items() if number == wanted]  # fmt: skip
            return JSONResponse({"incoming_phone_numbers": found})

        @app.post(prefix + "/IncomingPhoneNumbers/{sid}.json")
        async def update_number(account_sid: str, sid: str, request: Request) -> Response:
            if not self._authorized(request):
                return _error(401, 20003, "Authenticate")
            form = dict((await request.form()).items())
            with self._lock:
                self.number_updates.append({"sid": sid, **form})
            return JSONResponse({"sid": sid, **{k.lower(): v for k, v in form.items()}})

        return app

    def _dropping(self, app: FastAPI) -> Any:
        """`app`, except that a message create scripted DROP reads the request and hangs up."""

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> Any:
            if (
                scope["type"] == "http"
                and scope["method"] == "POST"
                and scope["path"].endswith("/Messages.json")
            ):
                with self._lock:
                    drop = bool(self.message_failures) and self.message_failures[0] == DROP
                    if drop:
                        self.message_failures.pop(0)
                if drop:
                    body = b""
                    while True:
                        message = await receive()
                        body += message.get("body", b"")
                        if not message.get("more_body"):
                            break
                    with self._lock:
                        self.dropped_messages.append({"body": body.decode(), "at": time.time()})
                    # uvicorn closes the connection, without a response, on an app that
                    # returns a value: the wire shape of a request lost after it arrived.
                    return True
            await app(scope, receive, send)
            return None

        return asgi

    def start(self) -> TwilioStandIn:
        self.server = ThreadedServer(self._dropping(self.app())).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()
