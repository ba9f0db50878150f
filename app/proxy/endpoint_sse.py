"""Client-facing legacy HTTP+SSE (`/sse`, `/sse/{name}`, `/messages/`), as raw ASGI handlers."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from app.proxy import jsonrpc
from app.proxy.asgi import Receive, Scope, Send, read_messages, respond, respond_error
from app.proxy.endpoint_streamable import stream_outbox
from app.proxy.jsonrpc import Message
from app.proxy.router import Router, UnknownBackend
from app.proxy.session import Session
from app.proxy.sse import encode


class LegacySSEEndpoint:
    def __init__(self, router: Router) -> None:
        self.router = router
        # Messages of one session are handled in the order they were posted, each POST answered at once.
        self._inboxes: dict[str, asyncio.Queue[Message]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def stream(self, scope: Scope, receive: Receive, send: Send, backend_name: str | None) -> None:
        if scope["method"] != "GET":
            await respond_error(
                send,
                405,
                jsonrpc.INVALID_REQUEST,
                "Method Not Allowed: use GET",
                headers=[(b"allow", b"GET")],
            )
            return
        try:
            backend = self.router.resolve(backend_name)
        except UnknownBackend as exc:
            await respond_error(send, 404, jsonrpc.INVALID_REQUEST, str(exc))
            return
        session = self.router.new_session(backend, "handshake", "sse")
        root = scope.get("root_path", "")
        endpoint = encode(f"{root}/messages/?session_id={session.id}".encode(), event="endpoint")
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._inboxes[session.id] = inbox
        self._workers[session.id] = asyncio.ensure_future(self._work(session, inbox))
        try:
            await stream_outbox(session, 0, receive, send, [endpoint])
        finally:
            self._inboxes.pop(session.id, None)
            worker = self._workers.pop(session.id, None)
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(BaseException):
                    await worker
            await session.close("client closed its SSE stream")

    async def _work(self, session: Session, inbox: asyncio.Queue[Message]) -> None:
        while True:
            msg = await inbox.get()
            if msg.is_request:
                await session.client_request(msg, None)
            elif msg.is_notification:
                await session.client_notification(msg)
            else:
                await session.client_response(msg)

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await respond_error(
                send,
                405,
                jsonrpc.INVALID_REQUEST,
                "Method Not Allowed: use POST",
                headers=[(b"allow", b"POST")],
            )
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        sid = (query.get("session_id") or [None])[0]
        if not sid:
            await respond_error(send, 400, jsonrpc.INVALID_REQUEST, "Bad Request: session_id is required")
            return
        session = self.router.sessions.get(sid)
        inbox = self._inboxes.get(sid)
        if session is None or inbox is None:
            await respond_error(send, 404, jsonrpc.INVALID_REQUEST, f"Could not find session {sid}")
            return
        decoded = await read_messages(receive, send, self.router.max_body)
        if decoded is None:
            return
        messages, _ = decoded
        for m in messages:
            inbox.put_nowait(m)
        await respond(send, 202, b"Accepted", content_type=b"text/plain; charset=utf-8")
