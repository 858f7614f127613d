"""A loopback reverse proxy in front of livekit-server that answers its SIP transfer API.

`livekit-server --dev` without Redis and livekit-sip cannot transfer a SIP call, so tests
that need a transfer point the worker at this tap: every HTTP request and WebSocket goes
through to the real server, except Twirp `livekit.SIP/TransferSIPParticipant`, which is
recorded (decoded with the real protobuf types) and answered as a successful transfer.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from livekit.protocol import sip as sip_proto

TRANSFER_PATH = "/twirp/livekit.SIP/TransferSIPParticipant"
_HOP_HEADERS = {
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "keep-alive",
}


@dataclass
class LiveKitTap:
    upstream_http: str  # e.g. http://127.0.0.1:7880
    transfers: list[sip_proto.TransferSIPParticipantRequest] = field(default_factory=list)
    transfer_status: int = 200
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LiveKitTap:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("livekit tap did not start")
        return self

    def _run(self, sock: socket.socket) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.SockSite(self._runner, sock)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == TRANSFER_PATH:
            body = await request.read()
            self.transfers.append(sip_proto.TransferSIPParticipantRequest.FromString(body))
            if self.transfer_status != 200:
                return web.json_response(
                    {"code": "unavailable", "msg": "transfer failed"}, status=self.transfer_status
                )
            return web.Response(body=b"", content_type="application/protobuf")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        target = self.upstream_http + request.rel_url.path_qs
        if request.headers.get("upgrade", "").lower() == "websocket":
            return await self._websocket(request, target, headers)
        async with aiohttp.ClientSession() as session:
            async with session.request(
                request.method, target, headers=headers, data=await request.read()
            ) as upstream:
                payload = await upstream.read()
                out_headers = {
                    k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
                }
                out_headers.pop("Content-Encoding", None)
                return web.Response(status=upstream.status, body=payload, headers=out_headers)

    async def _websocket(
        self, request: web.Request, target: str, headers: dict[str, str]
    ) -> web.StreamResponse:
        client = web.WebSocketResponse(autoping=False)
        await client.prepare(request)
        session = aiohttp.ClientSession()
        try:
            async with session.ws_connect(
                target.replace("http", "ws", 1), headers=headers, autoping=False
            ) as upstream:

                async def pump(src: Any, dst: Any) -> None:
                    async for msg in src:
                        if msg.type == aiohttp.WSMsgType.BINARY:
                            await dst.send_bytes(msg.data)
                        elif msg.type == aiohttp.WSMsgType.TEXT:
                            await dst.send_str(msg.data)
                        elif msg.type == aiohttp.WSMsgType.PING:
                            await dst.ping(msg.data)
                        elif msg.type == aiohttp.WSMsgType.PONG:
                            await dst.pong(msg.data)
                        else:
                            break
                    await dst.close()

                tasks = [
                    asyncio.ensure_future(pump(client, upstream)),
                    asyncio.ensure_future(pump(upstream, client)),
                ]
                _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await session.close()
        return client
