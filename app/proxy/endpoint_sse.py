"""Client-facing legacy HTTP+SSE (`/sse`, `/sse/{name}`, `/messages/`), as raw ASGI handlers."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs

from app.proxy import jsonrpc
from app.proxy.asgi import Receive, Scope, Send, read_messages, respond, respond_error
from app.proxy.endpoint_streamable import stream_outbox
from app.proxy.jsonrpc import Message
from app.proxy.limits import INBOX_FULL, SESSION_LIMIT, fmt_size
from app.proxy.router import Router, SessionLimit, UnknownBackend
from app.proxy.session import Session
from app.proxy.sse import encode
from app.proxy.streams import Inbox


class LegacySSEEndpoint:
    def __init__(self, router: Router) -> None:
        self.router = router
        # Sessions whose SSE stream is open (only they take POSTs), with their latest notification.
        self._streaming: dict[str, asyncio.Future[None] | None] = {}
        self._inboxes: dict[str, Inbox] = {}

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
        try:
            session = await self.router.open_session(backend, "handshake", "sse")
        except SessionLimit as exc:
            await respond_error(send, 503, SESSION_LIMIT, str(exc))
            return
        root = scope.get("root_path", "")
        endpoint = encode(f"{root}/messages/?session_id={session.id}".encode(), event="endpoint")
        self._streaming[session.id] = None
        self._inboxes[session.id] = Inbox()
        try:
            await stream_outbox(session, 0, receive, send, [endpoint])
        finally:
            self._streaming.pop(session.id, None)
            self._inboxes.pop(session.id, None)
            await session.close("client closed its SSE stream")  # ends the messages still in flight

    @staticmethod
    async def _handle(
        session: Session, msg: Message, after: asyncio.Future[None] | None, inbox: Inbox, cost: int
    ) -> None:
        try:
            await LegacySSEEndpoint._hand_on(session, msg, after)
        finally:
            inbox.release(cost)

    @staticmethod
    async def _hand_on(session: Session, msg: Message, after: asyncio.Future[None] | None) -> None:
        if after is not None:
            # Notifications are quick (nothing waits for an answer) and say what comes next means
            # something (`notifications/initialized`): what was posted after one goes after it.
            with contextlib.suppress(Exception):
                await asyncio.shield(after)
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
        if session is None or sid not in self._streaming:
            await respond_error(send, 404, jsonrpc.INVALID_REQUEST, f"Could not find session {sid}")
            return
        decoded = await read_messages(receive, send, self.router.max_body)
        if decoded is None:
            return
        messages, _ = decoded
        inbox = self._inboxes[sid]
        costs = inbox.admit(messages)
        if costs is None:
            await self._refuse(session, messages, inbox, send)
            return
        # Each message is handled on its own, as posted (tasks start in order): a quick call, a
        # ping, a cancellation or a reply to the backend never waits behind a long call.
        for m, cost in zip(messages, costs, strict=True):
            task = asyncio.ensure_future(self._handle(session, m, self._streaming.get(sid), inbox, cost))
            session.keep(task)
            if m.is_notification and sid in self._streaming:
                self._streaming[sid] = task
        await respond(send, 202, b"Accepted", content_type=b"text/plain; charset=utf-8")

    @staticmethod
    async def _refuse(session: Session, messages: list[Message], inbox: Inbox, send: Send) -> None:
        """A post past the inbox's bound: each request is answered with an error on the stream, where
        the client waits for its answers (a client whose POST fails may stop posting at all, as the
        SDK's does); a post with no request (nothing would tell its sender) gets 429."""
        backend = session.backend.name
        text = (
            f"the router's inbox for this session is full: {fmt_size(inbox.bytes)} in {inbox.count} message(s)"
            f" posted and not yet handed to backend '{backend}' (the bound is {fmt_size(inbox.max_bytes)}"
            f" or {inbox.max_messages} messages); not forwarded"
        )
        data = {"backend": backend, "waiting": inbox.bytes, "limit": inbox.max_bytes}
        what = ", ".join(m.method or f"a response to {m.id!r}" for m in messages[:3])
        session.router.log(backend, f"session {session.id[:8]}: refused {what}: {text}")
        requests = [m for m in messages if m.is_request and m.id is not None]
        for m in requests:
            assert m.id is not None
            session.outbox.put(jsonrpc.error(m.id, INBOX_FULL, text, data))
        if requests:
            await respond(send, 202, b"Accepted", content_type=b"text/plain; charset=utf-8")
        else:
            await respond_error(send, 429, INBOX_FULL, text, data=data, headers=[(b"retry-after", b"1")])
