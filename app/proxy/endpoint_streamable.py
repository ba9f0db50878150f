"""Client-facing Streamable HTTP (`/mcp`, `/mcp/{name}`), both protocol eras, as a raw ASGI handler."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.proxy import jsonrpc
from app.proxy.asgi import (
    ABORT_HOOK,
    DISCONNECT_HOOKS,
    HANDED_OVER,
    SSE_HEADERS,
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    header,
    headers_with_prefix,
    read_messages,
    respond,
    respond_error,
    wait_disconnect,
    watch_disconnect,
)
from app.proxy.jsonrpc import Message, RequestId
from app.proxy.limits import SESSION_LIMIT, fmt_size
from app.proxy.router import Router, SessionLimit, UnknownBackend
from app.proxy.session import Pending, Session
from app.proxy.sse import COMMENT_PING, encode
from app.proxy.streams import RETRY_MS, SINK_BYTES, DirectReply, DirectSink, PostStream, Sink, primes

# Headers a modern-era request carries that the backend must see untouched: these, and the client's
# credentials.
FORWARDED_PLAIN = (b"mcp-protocol-version", b"mcp-method", b"mcp-name")
FORWARDED = frozenset({*FORWARDED_PLAIN, b"authorization"})
FORWARDED_PREFIXES = (b"mcp-param-",)
KEEPALIVE = 15.0
# The router's own event ids: "N" on a session's stream, "N-M" on a POST's answer stream.
EVENT_ID = re.compile(r"([0-9]{1,15})(?:-([0-9]{1,15}))?")


def error_status(msg: Message) -> int:
    """The HTTP status the modern era pairs with an error answer (200 for a code it does not name)."""
    err = msg.data.get("error")
    code = err.get("code") if isinstance(err, dict) else None
    return jsonrpc.ERROR_HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200


def modern_status(msg: Message, backend_status: int | None) -> int:
    """The HTTP status of a modern-era JSON answer: the backend's own, or the one its error implies."""
    return backend_status if backend_status is not None else error_status(msg)


def _accepts(scope: Scope) -> tuple[bool, bool]:
    """Whether the client takes a JSON answer, and an SSE stream (its Accept; none takes both)."""
    accept = header(scope, b"accept") or "*/*"
    wants_sse = "text/event-stream" in accept
    return "application/json" in accept or "*/*" in accept or not wants_sse, wants_sse


def _cancel_task(task: asyncio.Task[object], _watcher: object) -> None:
    task.cancel()


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A modern-era POST the router answers itself: the HTTP status and the JSON-RPC error."""

    status: int
    code: int
    text: str
    msg_id: RequestId | None


# A hot-path request whose answer needs the endpoint after all (a stream, not one JSON body): its
# session, the request, its sink. A tuple: it is made for every hot-path call, and read only then.
Handed = tuple[Session, Message, Sink]


_FORWARDED_NAMES = tuple((name, name.decode()) for name in sorted(FORWARDED))


def _forwarded(headers: dict[bytes, bytes]) -> Mapping[str, str]:
    """The request's headers the backend must see (`headers` by lower-case name, as the hot path has them).

    The mapping may be shared with other requests: read it, never change it.
    """
    prefixed = _any_prefixed(tuple(headers))
    if prefixed or b"authorization" in headers:
        return _read_forwarded(headers, prefixed)
    get = headers.get
    return _forwarded_plain(get(FORWARDED_PLAIN[0]), get(FORWARDED_PLAIN[1]), get(FORWARDED_PLAIN[2]))


@functools.lru_cache(maxsize=256)
def _any_prefixed(names: tuple[bytes, ...]) -> bool:
    """Whether a forwarded prefix begins any of these header names. A client sends the same ones
    call after call (the same objects too, from the head parser's tables: hashed once)."""
    return any(name.startswith(FORWARDED_PREFIXES) for name in names)


@functools.lru_cache(maxsize=256)
def _forwarded_plain(*values: bytes | None) -> Mapping[str, str]:
    """`_forwarded` of a request with neither credentials nor a prefixed header, by the values of
    FORWARDED_PLAIN: a client sends the same ones call after call (remembered; credentials never are)."""
    return _read_forwarded({k: v for k, v in zip(FORWARDED_PLAIN, values, strict=True) if v is not None}, False)


def _read_forwarded(headers: dict[bytes, bytes], prefixed: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, text in _FORWARDED_NAMES:
        value = headers.get(name)
        if value is not None:
            out[text] = value.decode("latin-1")
    if prefixed:
        for k, v in headers.items():
            if k.startswith(FORWARDED_PREFIXES):
                out[k.decode("latin-1")] = v.decode("latin-1")
    return out


@functools.lru_cache(maxsize=64)
def _modern_json_version(version: bytes | None, ctype: bytes | None, accept: bytes) -> str | None:
    """The modern-era version a request names, if its headers make it the hot path's: a JSON body,
    a JSON answer wanted, a version header that is not a handshake version. None: the full path's.

    Of header values only (a client sends the same ones call after call): remembered.
    """
    if version is None or ctype is None or not ctype.lower().startswith(b"application/json"):
        return None
    text = version.decode("latin-1")
    if text in jsonrpc.HANDSHAKE_VERSIONS:
        return None
    # (bytes `in` bytes formats an exception first: find)
    if accept.find(b"application/json") < 0 and accept.find(b"*/*") < 0 and accept.find(b"text/event") >= 0:
        return None  # it wants the answer as a stream
    return text


class StreamableEndpoint:
    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send, backend_name: str | None) -> None:
        method = scope["method"]
        handed: Handed | None = scope.get(HANDED_OVER)
        if handed is not None:
            await self.resume(scope, receive, send, handed)
        elif method == "POST":
            await self.post(scope, receive, send, backend_name)
        elif method == "GET":
            await self.get(scope, receive, send)
        elif method == "DELETE":
            await self.delete(scope, send)
        else:
            await respond_error(
                send,
                405,
                jsonrpc.INVALID_REQUEST,
                f"Method Not Allowed: {method}",
                headers=[(b"allow", b"GET, POST, DELETE")],
            )

    # ------------------------------------------------------------------ POST
    async def post(self, scope: Scope, receive: Receive, send: Send, backend_name: str | None) -> None:
        router = self.router
        ctype = header(scope, b"content-type")
        if ctype is not None and not ctype.lower().startswith("application/json"):
            await respond_error(
                send,
                415,
                jsonrpc.INVALID_REQUEST,
                "Unsupported Media Type: Content-Type must be application/json",
            )
            return
        decoded = await read_messages(receive, send, router.max_body)
        if decoded is None:
            return
        messages, is_batch = decoded
        sid = header(scope, b"mcp-session-id")
        version_header = header(scope, b"mcp-protocol-version")
        if sid:
            session = router.sessions.get(sid)
            if session is None or session.closed:
                await respond_error(send, 404, jsonrpc.INVALID_REQUEST, "Session not found: initialize a new session")
                return
            if version_header and version_header not in jsonrpc.HANDSHAKE_VERSIONS:
                await respond_error(
                    send,
                    400,
                    jsonrpc.INVALID_REQUEST,
                    f"Bad Request: unsupported MCP-Protocol-Version {version_header} for a session",
                    messages[0].id,
                )
                return
            if is_batch and session.protocol_version != jsonrpc.BATCH_VERSION:
                await respond_error(
                    send,
                    400,
                    jsonrpc.INVALID_REQUEST,
                    f"Invalid Request: protocol {session.protocol_version} has no batches",
                    messages[0].id,
                )
                return
            await self._dispatch(session, messages, is_batch, scope, receive, send, None)
            return
        first = messages[0]
        # Like the SDK: a version header that is not a handshake version selects the modern era (an
        # unknown one gets the backend's own -32022); without a header the `_meta` envelope decides.
        modern_version: str | None = None
        if version_header is not None and version_header not in jsonrpc.HANDSHAKE_VERSIONS:
            modern_version = version_header
        elif version_header is None:
            modern_version = jsonrpc.meta_version(first)
        if len(messages) == 1 and first.method == "initialize" and first.is_request and modern_version is None:
            try:
                backend = router.resolve(backend_name)
            except UnknownBackend as exc:
                await respond_error(send, 404, jsonrpc.INVALID_REQUEST, str(exc), first.id)
                return
            try:
                session = await router.open_session(backend, "handshake", "streamable-http")
            except SessionLimit as exc:
                await respond_error(send, 503, SESSION_LIMIT, str(exc), first.id)
                return
            await self._dispatch(session, messages, False, scope, receive, send, None, new_session=True)
            return
        if modern_version is not None:
            await self._modern(messages, is_batch, modern_version, version_header, scope, receive, send, backend_name)
            return
        await respond_error(
            send,
            400,
            jsonrpc.INVALID_REQUEST,
            "Bad Request: no Mcp-Session-Id (send initialize first) and no 2026-07-28 _meta envelope",
            first.id,
        )

    def _modern_target(
        self,
        messages: list[Message],
        is_batch: bool,
        version: str,
        version_header: str | None,
        scope: Scope,
        backend_name: str | None,
    ) -> tuple[Session, dict[str, str]] | _Refusal:
        """Where a modern-era POST goes (its shared session, the headers to forward), or why not."""
        first = messages[0]
        if is_batch:
            return _Refusal(400, jsonrpc.INVALID_REQUEST, "Invalid Request: the 2026-07-28 era has no batches", None)
        try:
            backend = self.router.resolve(backend_name)
        except UnknownBackend as exc:
            return _Refusal(404, jsonrpc.INVALID_REQUEST, str(exc), first.id)
        if not first.is_request:
            return _Refusal(202, 0, "", None)  # the modern era has no client-to-server notifications on HTTP
        meta_version = jsonrpc.meta_version(first)
        if version_header is not None and meta_version is not None and version_header != meta_version:
            return _Refusal(
                400,
                jsonrpc.HEADER_MISMATCH,
                f"Header mismatch: MCP-Protocol-Version {version_header} but _meta says {meta_version}",
                first.id,
            )
        if backend.transport == "sse":
            # The backend's own answer would be the same: HTTP+SSE predates this era. The client falls back.
            return _Refusal(
                400,
                jsonrpc.INVALID_REQUEST,
                f"backend '{backend.name}' speaks legacy HTTP+SSE only, which has no {version} era; use initialize",
                first.id,
            )
        session = self.router.modern_session(backend)
        headers = headers_with_prefix(scope, FORWARDED, FORWARDED_PREFIXES)
        headers.setdefault("mcp-protocol-version", version)
        return session, headers

    async def _modern(
        self,
        messages: list[Message],
        is_batch: bool,
        version: str,
        version_header: str | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        backend_name: str | None,
    ) -> None:
        target = self._modern_target(messages, is_batch, version, version_header, scope, backend_name)
        if isinstance(target, _Refusal):
            if target.status == 202:
                await respond(send, 202)
            else:
                await respond_error(send, target.status, target.code, target.text, target.msg_id)
            return
        session, headers = target
        self.router.modern_clients.seen(session.backend.name, jsonrpc.msg_meta(messages[0]), version)
        await self._dispatch(session, messages, False, scope, receive, send, headers, modern=True)

    # ------------------------------------------------------------------ POST, the hot path
    @staticmethod
    def head_verdict(headers: dict[bytes, bytes]) -> tuple[str, Mapping[str, str]] | None:
        """What `post_now` reads of a request's headers (by lower-case name, none repeated): its
        modern-era version and the headers to forward. None: not the hot path's.

        Of the headers alone, so the caller may remember it for the same headers (see
        `RouterApp.post_now`).
        """
        version = _modern_json_version(
            headers.get(b"mcp-protocol-version"), headers.get(b"content-type"), headers.get(b"accept", b"*/*")
        )
        if version is None or headers.get(b"mcp-session-id") is not None:
            return None
        return version, _forwarded(headers)

    def post_now(
        self,
        scope: Scope,
        body: bytes,
        backend_name: str | None,
        version: str,
        forwarded: Mapping[str, str],
        reply: DirectReply,
    ) -> bool:
        """A modern-era request whose answer can be written from the backend connection's callback.

        The common case of the hot path: one request, JSON both ways, a Streamable HTTP or stdio
        backend that is up.
        Everything is checked as `post` checks it, and on any doubt (an error to answer, a backend
        to wait for, a stream to open) this returns False with nothing done: `post` takes it.
        `version` and `forwarded`: the request's `head_verdict`.
        """
        if len(body) > self.router.max_body:
            return False
        try:
            messages, is_batch = jsonrpc.parse_body(body)
        except jsonrpc.ProtocolError:
            return False
        if is_batch:
            return False
        request = messages[0]
        data = request.data
        if request.id is None or "method" not in data:
            return False  # not a request (`is_request`: a validated request's id is never null)
        # The `_meta` envelope, read once here for all its uses (what jsonrpc.msg_meta reads).
        params = data.get("params")
        meta = params.get("_meta") if type(params) is dict else None
        if type(meta) is dict:
            meta_version = meta.get(jsonrpc.META_PROTOCOL_VERSION)
            if isinstance(meta_version, str) and meta_version != version:
                return False  # the full path answers the mismatch
        try:
            backend = self.router.resolve(backend_name)
        except UnknownBackend:
            return False
        if backend.transport == "sse":
            return False
        session = self.router.modern_session(backend)
        sink = DirectSink(reply, request.id, modern_status)
        handed: Handed = (session, request, sink)
        scope[HANDED_OVER] = handed  # read only if the sink hands over
        if not session.send_now(request, sink, forwarded, meta):
            del scope[HANDED_OVER]
            return False
        # Sent: from here on the request is this path's, whatever happens (never sent twice).
        hooks: list[Callable[[], None]] | None = scope.get(DISCONNECT_HOOKS)
        if hooks is not None and sink.reply is not None:
            hooks.append(functools.partial(self._gone_now, session, request, sink))
        self.router.modern_clients.seen(backend.name, meta, version)
        return True

    def _gone_now(self, session: Session, request: Message, sink: DirectSink) -> None:
        """The client left a hot-path request: cancel it upstream, end the stream it was handed to."""
        p = self._pending_for(session, request, sink)
        if p is not None:
            session.client_gone(p)
        if sink.reply is not None:
            sink.reply = None
            sink.closed = True
        else:
            sink.put(jsonrpc.notification("$closed"))

    async def resume(self, scope: Scope, receive: Receive, send: Send, handed: Handed) -> None:
        """A hot-path request whose answer turned out to need a stream: serve it as `_dispatch` would."""
        session, request, sink = handed
        wants_json, wants_sse = _accepts(scope)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        await self._stream_answers(
            session,
            [request],
            False,
            sink,
            done,
            watch_disconnect(scope, receive),
            scope,
            receive,
            send,
            wants_json,
            wants_sse,
            new_session=False,
            modern=True,
        )

    async def _dispatch(
        self,
        session: Session,
        messages: list[Message],
        is_batch: bool,
        scope: Scope,
        receive: Receive,
        send: Send,
        fwd_headers: dict[str, str] | None,
        *,
        new_session: bool = False,
        modern: bool = False,
    ) -> None:
        requests = [m for m in messages if m.is_request]
        sink = Sink() if requests else None
        for m in messages:
            if m.is_response:
                await session.client_response(m)
            elif m.is_notification:
                await session.client_notification(m, fwd_headers)
        if sink is None:
            await respond(send, 202)
            return
        wants_json, wants_sse = _accepts(scope)
        # Modern era: closing the stream is the cancellation, so watch for it from the start.
        watcher = watch_disconnect(scope, receive) if modern else None
        if len(requests) == 1 and not is_batch:
            # The hot path: forward in this task (no hand-off). Usually the answer is in the sink
            # when this returns; if the client goes away meanwhile, the watcher interrupts us.
            forwarder: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            me = asyncio.current_task()
            interrupt = None
            if watcher is not None and me is not None:
                interrupt = functools.partial(_cancel_task, me)
                watcher.add_done_callback(interrupt)
            try:
                await session.client_request(requests[0], sink, fwd_headers)
            except asyncio.CancelledError:
                if watcher is None or not watcher.done():
                    raise
                p = self._pending_for(session, requests[0], sink)
                if p is not None:
                    session.client_gone(p)
                return
            finally:
                if interrupt is not None and watcher is not None:
                    watcher.remove_done_callback(interrupt)
            forwarder.set_result(None)
            if sink.queue.qsize() == 1 and wants_json:
                msg, backend_status = sink.queue.get_nowait()
                if msg.is_response and msg.id == requests[0].id:
                    if watcher is not None:
                        watcher.cancel()
                    await self._answer_json(session, msg, backend_status, send, new_session, modern)
                    return
                sink.queue.put_nowait((msg, backend_status))
        else:
            forwarder = asyncio.ensure_future(self._forward_all(session, requests, sink, fwd_headers))
        await self._stream_answers(
            session,
            requests,
            is_batch,
            sink,
            forwarder,
            watcher,
            scope,
            receive,
            send,
            wants_json,
            wants_sse,
            new_session=new_session,
            modern=modern,
        )

    async def _stream_answers(
        self,
        session: Session,
        requests: list[Message],
        is_batch: bool,
        sink: Sink,
        forwarder: asyncio.Future[None],
        watcher: asyncio.Future[None] | None,
        scope: Scope,
        receive: Receive,
        send: Send,
        wants_json: bool,
        wants_sse: bool,
        *,
        new_session: bool,
        modern: bool,
    ) -> None:
        """Answer a POST from its sink: one JSON body, or an SSE stream once anything else comes first."""
        extra: list[tuple[bytes, bytes]] = []
        if new_session:
            extra.append((b"mcp-session-id", session.id.encode()))
        waiting: set[RequestId] = {m.id for m in requests if m.id is not None}
        answers: list[Message] = []
        stream: PostStream | None = None
        streaming = False
        status = 200
        resumable = False
        try:
            while waiting:
                item = await self._next(sink, watcher)
                if item is None:
                    raise ClientDisconnected
                msg, backend_status = item
                if msg.method == "$closed":
                    break
                is_answer = msg.is_response and msg.id in waiting
                if not streaming:
                    if is_answer and wants_json:
                        waiting.discard(msg.id)
                        answers.append(msg)
                        if modern and backend_status is not None:
                            status = backend_status
                        elif modern and msg.is_error:
                            status = error_status(msg)
                        continue
                    if not wants_sse:
                        session.router.log(session.backend.name, f"client accepts no stream; dropped {msg.method}")
                        continue
                    streaming = True
                    if watcher is None:
                        watcher = watch_disconnect(scope, receive)
                    sink.on_overflow = functools.partial(self._overflowed, session, sink, scope, watcher)
                    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + extra})
                    if not modern:
                        stream = session.open_post_stream(sink, waiting)
                        resumable = True
                        if primes(session.protocol_version):
                            await send({"type": "http.response.body", "body": stream.priming(), "more_body": True})
                    for a in answers:
                        data = stream.frame(a.raw) if stream else encode(a.raw)
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                    answers.clear()
                if is_answer:
                    waiting.discard(msg.id)
                data = stream.frame(msg.raw) if stream else encode(msg.raw)
                await send({"type": "http.response.body", "body": data, "more_body": True})
            if streaming:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            elif answers:
                body = jsonrpc.encode_batch(answers) if is_batch else answers[0].raw
                if new_session and session.init_result is None:
                    extra = []  # initialize failed: there is no session to name
                await respond(send, status, body, headers=extra)
            else:
                await respond(send, 500, headers=extra)
        except (ClientDisconnected, OSError):
            if resumable and stream is not None and not sink.overflowed:
                # Handshake era: a dropped stream is not a cancellation; the client may resume it.
                stream.attached = False
                if not forwarder.done():
                    session.keep(forwarder)
                return
            sink.closed = True
            if modern:
                for m in requests:
                    p = self._pending_for(session, m, sink)
                    if p is not None:
                        session.client_gone(p)
        finally:
            if watcher is not None:
                watcher.cancel()
            if not (resumable and stream is not None and not stream.attached):
                sink.closed = True
                if stream is not None:
                    stream.attached = False
                if not forwarder.done():
                    forwarder.cancel()
                with contextlib.suppress(BaseException):
                    await forwarder
        if new_session and session.init_result is None and not session.closed:
            await session.close("initialize failed")

    @staticmethod
    async def _answer_json(
        session: Session, msg: Message, backend_status: int | None, send: Send, new_session: bool, modern: bool
    ) -> None:
        status = modern_status(msg, backend_status) if modern else 200
        headers = (
            [(b"mcp-session-id", session.id.encode())] if new_session and session.init_result is not None else None
        )
        try:
            await respond(send, status, msg.raw, headers=headers)
        except OSError:
            pass
        if new_session and session.init_result is None and not session.closed:
            await session.close("initialize failed")

    def _overflowed(
        self,
        session: Session,
        sink: Sink,
        scope: Scope,
        watcher: asyncio.Future[None],
        waiting: int,
    ) -> None:
        """The client stopped reading its answer stream: end it and cancel its requests upstream."""
        pending = [p for p in session.pending.values() if p.sink is sink]
        session.abandon(
            pending,
            f"the client stopped reading its answer stream ({fmt_size(waiting)} waiting, over {fmt_size(SINK_BYTES)});"
            " closed it",
        )
        abort = scope.get(ABORT_HOOK)
        if abort is not None and not watcher.done():
            abort()  # unblocks the write the stream is stuck in; the connection is not reused

    @staticmethod
    def _pending_for(session: Session, m: Message, sink: Sink) -> Pending | None:
        # By its stream too: on a shared session two clients' requests may have the same id and
        # method (every SDK client numbers from 1), and one closing its stream cancels only its own.
        for p in session.pending.values():
            if p.sink is sink and p.client_id == m.id and p.msg.method == m.method:
                return p
        return None

    @staticmethod
    async def _forward_all(
        session: Session, requests: list[Message], sink: Sink, headers: dict[str, str] | None
    ) -> None:
        for m in requests:
            await session.client_request(m, sink, headers)  # it answers every failure into the sink

    @staticmethod
    async def _next(sink: Sink, watcher: asyncio.Future[None] | None) -> tuple[Message, int | None] | None:
        if not sink.queue.empty():
            return sink.queue.get_nowait()
        if watcher is None:
            return await sink.queue.get()
        getter = asyncio.ensure_future(sink.queue.get())
        waits: set[asyncio.Future[Any]] = {getter, watcher}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        return None

    # ------------------------------------------------------------------ GET
    async def get(self, scope: Scope, receive: Receive, send: Send) -> None:
        sid = header(scope, b"mcp-session-id")
        accept = header(scope, b"accept") or ""
        if "text/event-stream" not in accept:
            await respond_error(
                send,
                406,
                jsonrpc.INVALID_REQUEST,
                "Not Acceptable: GET opens an SSE stream (Accept: text/event-stream)",
            )
            return
        if not sid:
            await respond_error(send, 400, jsonrpc.INVALID_REQUEST, "Bad Request: a GET stream needs an Mcp-Session-Id")
            return
        session = self.router.sessions.get(sid)
        if session is None or session.closed:
            await respond_error(send, 404, jsonrpc.INVALID_REQUEST, "Session not found: initialize a new session")
            return
        last = header(scope, b"last-event-id")
        event = EVENT_ID.fullmatch(last) if last else None
        if last and event is None:
            shown = last if len(last) <= 40 else last[:40] + "…"
            await respond_error(
                send,
                400,
                jsonrpc.INVALID_REQUEST,
                f"Bad Request: Last-Event-ID {shown!r} is not an event id this router sent (ids look like 12 or 3-4)",
            )
            return
        if event is not None and event.group(2) is not None:
            await self._resume_post_stream(session, int(event.group(1)), int(event.group(2)), receive, send)
            return
        if session.outbox.readers > 0:
            await respond_error(
                send, 409, jsonrpc.INVALID_REQUEST, "Conflict: this session already has a GET stream open"
            )
            return
        cursor = int(event.group(1)) if event is not None else session.outbox.delivered
        # Older clients get a comment instead: the response head goes out only with a first body
        # chunk, and a client may wait for it before it goes on.
        if primes(session.protocol_version):
            first = encode(b"", event_id=str(cursor), retry=RETRY_MS)
        else:
            first = COMMENT_PING
        await stream_outbox(session, cursor, receive, send, [first])

    async def _resume_post_stream(self, session: Session, number: int, seq: int, receive: Receive, send: Send) -> None:
        stream = session.post_streams.get(number)
        if stream is None:
            await respond_error(
                send, 404, jsonrpc.INVALID_REQUEST, f"Not Found: no stream to resume at event {number}-{seq}"
            )
            return
        if stream.attached:
            await respond_error(send, 409, jsonrpc.INVALID_REQUEST, "Conflict: that stream is still being written")
            return
        stream.attached = True
        watcher = asyncio.ensure_future(wait_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            for data in stream.replay_after(seq):
                await send({"type": "http.response.body", "body": data, "more_body": True})
            while stream.waiting:
                item = await self._next(stream.sink, watcher)
                if item is None:
                    return
                msg, _status = item
                if msg.method == "$closed":
                    break
                if msg.is_response:
                    stream.waiting.discard(msg.id)
                await send({"type": "http.response.body", "body": stream.frame(msg.raw), "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return
        finally:
            stream.attached = False
            watcher.cancel()

    # ------------------------------------------------------------------ DELETE
    async def delete(self, scope: Scope, send: Send) -> None:
        sid = header(scope, b"mcp-session-id")
        if not sid:
            await respond_error(send, 400, jsonrpc.INVALID_REQUEST, "Bad Request: DELETE needs an Mcp-Session-Id")
            return
        session = self.router.sessions.get(sid)
        if session is None:
            await respond_error(send, 404, jsonrpc.INVALID_REQUEST, "Session not found")
            return
        await session.close("client ended the session")
        await respond(send, 200)


async def stream_outbox(session: Session, cursor: int, receive: Receive, send: Send, first_events: list[bytes]) -> None:
    """Write the session's own stream until the client goes or the session ends."""
    outbox = session.outbox
    outbox.readers += 1
    session.wake()  # parked at a swap while nobody listened: the backend's notifications flow again
    watcher = asyncio.ensure_future(wait_disconnect(receive))
    try:
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for ev in first_events:
            await send({"type": "http.response.body", "body": ev, "more_body": True})
        while not watcher.done():
            reader = asyncio.ensure_future(outbox.read(cursor))
            waits: set[asyncio.Future[Any]] = {reader, watcher}
            done, _ = await asyncio.wait(waits, timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED)
            if reader not in done:
                reader.cancel()
                if watcher in done:
                    break
                await send({"type": "http.response.body", "body": COMMENT_PING, "more_body": True})
                continue
            items = reader.result()
            if not items:
                break  # the session ended
            if items[0][0] > cursor + 1:
                session.router.log(
                    session.backend.name,
                    f"session {session.id[:8]}: the client's stream fell {items[0][0] - cursor - 1} message(s)"
                    f" behind the {fmt_size(outbox.max_bytes)} it may lag by; they were dropped",
                )
            chunk = b"".join(encode(m.raw, event_id=str(i)) for i, m in items)
            cursor = items[-1][0]
            outbox.delivered = max(outbox.delivered, cursor)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except OSError:
        pass
    finally:
        outbox.readers -= 1
        watcher.cancel()
