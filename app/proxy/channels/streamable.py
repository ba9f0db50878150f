"""Streamable HTTP to a backend: POST per message, JSON or SSE answers, a GET stream for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Mapping

from app.proxy import jsonrpc
from app.proxy.channels.base import BackendUnavailable
from app.proxy.channels.http import CONNECT_ERRORS, HTTPChannel
from app.proxy.http_client import BodyTooLarge, ConnectFailed, Response, _Connection
from app.proxy.jsonrpc import Message, RequestId
from app.proxy.sse import SSEDecoder

ACCEPT = "application/json, text/event-stream"
# A JSON answer up to this size, arrived whole, is handled in the connection's callback (`send_now`);
# a larger one goes the usual way, where --max-message and the paced writes apply.
FAST_ANSWER_MAX = 256 * 1024


def _describe(m: Message) -> str:
    if m.is_response:
        return f"a response with id {m.data.get('id')!r}"[:120]
    if m.is_notification:
        return f"a notification ({m.method})"[:120]
    return f"a request ({m.method})"[:120]


class StreamableHTTPChannel(HTTPChannel):
    transport = "streamable-http"

    session_id: str | None = None  # the backend's own, learnt from its answer to initialize
    _get_task: asyncio.Task[None] | None = None

    @functools.cached_property
    def _streams(self) -> dict[RequestId, asyncio.Task[None]]:
        """Readers of SSE answers still open, by request id."""
        return {}

    async def open(self) -> None:
        # HTTP needs no connection up front: the first POST (initialize) shows whether the backend is there.
        self.alive = True

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        headers = {**self.extra_headers, "Accept": ACCEPT, "Content-Type": "application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        if self.protocol_version:
            headers["MCP-Protocol-Version"] = self.protocol_version
        if extra:
            headers.update(extra)
        return headers

    async def send(self, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        if not self.alive:
            raise BackendUnavailable(f"{self.describe} is closed")
        try:
            resp = await self.http.request("POST", self.url, msg.raw, self._headers(headers))
        except ConnectFailed as exc:
            # Never connected, so nothing was sent: the caller may hold the message and send it again.
            reason = f"cannot reach {self.url}: {exc}"
            if self.mode == "handshake":
                self.lost(reason)
            raise BackendUnavailable(reason) from None
        except CONNECT_ERRORS as exc:
            # Connected and maybe delivered: the backend died with the request in flight.
            reason = f"backend connection broke: {exc or type(exc).__name__}"
            if msg.is_request:
                self._request_failed(msg.id, reason)
            if self.mode == "handshake":
                self.lost(reason)
            return
        await self._answered(msg, resp)

    async def _answered(self, msg: Message, resp: Response) -> None:
        try:
            await self._handle_response(msg, resp)
        except BaseException:
            resp.release()
            raise

    @functools.cached_property
    def origin(self) -> tuple[str, str, int]:
        """The pool's key for this backend: `send_now`'s connection is `http.take_idle_at(origin)`."""
        return self.http.origin(self.url)

    def send_now(self, conn: _Connection, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        """Send a modern-era request on `conn`, its answer taken without a task.

        A JSON answer that arrives whole is delivered from the connection's callbacks; anything
        else (an SSE stream, a large body, a failure) goes to the usual coroutine.
        """
        # The request's head, as sent before with the same forwarded headers (the endpoint gives
        # the same mapping for the same ones) and the same session and version.
        key = (id(headers), self.session_id, self.protocol_version)
        known = self._heads_now.get(key)
        if known is not None and known[0] is headers:  # (the entry holds `headers`: its id is not reused)
            head = known[1]
        else:
            head, keep = self.http.request_head("POST", self.url, self._headers(headers))
            if keep:
                if len(self._heads_now) >= 64:
                    self._heads_now.clear()
                self._heads_now[key] = (headers, head)
        resp = self.http.send_now(conn, head, msg.raw, functools.partial(self._progress, msg))
        if msg.id is not None:
            self._waiting_now[msg.id] = resp

    @functools.cached_property
    def _heads_now(self) -> dict[tuple[int, str | None, str | None], tuple[Mapping[str, str] | None, bytes]]:
        """`send_now`'s request heads, by forwarded headers, session id and version: never one
        with credentials (a client's forwarded token, a backend's own)."""
        return {}

    @functools.cached_property
    def _waiting_now(self) -> dict[RequestId, Response]:
        """Hot-path requests whose answer has not come, by request id (to cancel them)."""
        return {}

    def _progress(self, msg: Message, resp: Response) -> None:
        if resp.complete:
            resp.on_progress = None
            rid = msg.id
            if rid is not None and self._waiting_now.get(rid) is resp:  # `_forget_now`, without its frame
                del self._waiting_now[rid]
            ctype = resp.headers.get("content-type", "")
            # (`ctype.startswith`, without its argument parsing: every hot-path answer)
            if resp.status == 202 or ctype[:16] != "application/json" or resp.buffered > FAST_ANSWER_MAX:
                self._spawn_answer(msg, resp)
                return
            try:
                self._handle_body(msg, resp.status, ctype, resp.take_body(release=False))
            except Exception as exc:  # a bug here must fail one request, not the connection
                self.listener.on_backend_log(self, f"router error on the answer to {msg.id!r}: {exc!r}")
                self._request_failed(msg.id, f"the router could not handle the answer: {exc!r}")
            finally:
                resp.release()  # the connection back to the pool, once the answer is on its way
            return
        if resp.failure is not None:
            resp.on_progress = None
            self._forget_now(msg, resp)
            resp.release()
            broke = "broke" if resp.status == 0 else "broke while answering"
            self._request_failed(msg.id, f"backend connection {broke}: {resp.failure}")
            return
        if resp.status == 0:
            return  # no head yet
        if resp.buffered > FAST_ANSWER_MAX or resp.status == 202:
            resp.on_progress = None
            self._spawn_answer(msg, resp)
            return
        if not resp.headers.get("content-type", "").startswith("application/json"):
            # An SSE stream (or anything else): read by the usual coroutine, as it arrives.
            resp.on_progress = None
            self._spawn_answer(msg, resp)

    def _forget_now(self, msg: Message, resp: Response) -> None:
        if msg.id is not None and self._waiting_now.get(msg.id) is resp:
            del self._waiting_now[msg.id]

    def _spawn_answer(self, msg: Message, resp: Response) -> None:
        self._forget_now(msg, resp)
        task = asyncio.ensure_future(self._answered(msg, resp))
        if msg.id is not None:
            rid = msg.id
            self._streams[rid] = task
            task.add_done_callback(lambda _t: self._forget_stream(rid, _t))

    async def _handle_response(self, msg: Message, resp: Response) -> None:
        status = resp.status
        if status == 404 and self.session_id and self.mode == "handshake":
            resp.release()
            self.lost("backend answered 404 for its session (it restarted)")
            raise BackendUnavailable("backend session expired")
        sid = resp.headers.get("mcp-session-id")
        if sid and self.session_id is None and self.mode == "handshake":
            self.session_id = sid
        if status == 202 or (status < 300 and not msg.is_request):
            resp.release()
            return
        ctype = resp.headers.get("content-type", "")
        if ctype.startswith("text/event-stream") and status < 300:
            if msg.id is None:
                resp.release()
                return
            rid = msg.id
            task = asyncio.create_task(self._read_stream(rid, resp))
            self._streams[rid] = task
            task.add_done_callback(lambda _t: self._forget_stream(rid, _t))
            return
        try:
            body = await resp.read(self.max_message)
        except BodyTooLarge as exc:
            err = self.oversized(exc.size or exc.limit, msg.id, exact=exc.size is not None)
            if err is not None:
                self.listener.on_backend_message(self, err, msg.id, status)
            return
        except CONNECT_ERRORS as exc:
            self._request_failed(msg.id, f"backend connection broke while answering: {exc}")
            return
        finally:
            resp.release()
        self._handle_body(msg, status, ctype, body)

    def _handle_body(self, msg: Message, status: int, ctype: str, body: bytes) -> None:
        if ctype[:16] == "application/json" and body:  # (`startswith`, without its argument parsing)
            try:
                messages, _ = jsonrpc.parse_body(body)
            except jsonrpc.ProtocolError as exc:
                self.listener.on_backend_log(
                    self, f"backend sent invalid JSON-RPC ({exc.message}): {body[:200]!r}", garbage=True
                )
                self._request_failed(msg.id, f"backend sent an invalid answer (HTTP {status}): {exc.message}")
                return
            if len(messages) == 1 and msg.id is not None:
                m = messages[0]
                # `_deliver_json`'s common case, without its frame: a request's answer alone (a
                # validated message with no method and a non-null id is a response).
                if m.id == msg.id and "method" not in m.data and "method" in msg.data:
                    self.listener.on_backend_message(self, m, msg.id, status)
                    return
            self._deliver_json(msg, messages, status)
            return
        text = body[:300].decode("utf-8", "replace").strip()
        self._request_failed(msg.id, f"backend answered HTTP {status}" + (f": {text}" if text else ""), status)

    def _deliver_json(self, request: Message, messages: list[Message], status: int) -> None:
        """A JSON reply to a POST: its answer, and what came with it; a reply without one fails the request."""
        if not request.is_request:
            for m in messages:
                self.listener.on_backend_message(self, m, None, status)
            return
        if len(messages) == 1:
            m = messages[0]
            if m.id == request.id and m.is_response:  # the common case: its answer alone
                self.listener.on_backend_message(self, m, request.id, status)
                return
        answered = False
        strays: list[Message] = []
        for m in messages:
            m = self._addressed(m, request)
            if m.is_response:
                # A JSON reply answers its own POST: a response to another id is not routed anywhere.
                if m.id == request.id and not answered:
                    answered = True
                else:
                    strays.append(m)
                    continue
            self.listener.on_backend_message(self, m, request.id, status)
        if answered:
            return
        what = ", ".join(_describe(m) for m in strays or messages) or "nothing"
        self.listener.on_backend_log(self, f"reply to request {request.id!r} did not answer it: {what}")
        self._request_failed(request.id, f"its JSON reply (HTTP {status}) did not answer this request: it sent {what}")

    @staticmethod
    def _addressed(answer: Message, request: Message | RequestId | None) -> Message:
        """An error with a null id on a request's own response is that request's answer.

        A backend that cannot read a request (the SDK's validation errors, for one) answers
        `"id": null`; left so, it would reach no one and the client would wait forever.
        """
        request_id = request.id if isinstance(request, Message) else request
        if request_id is not None and answer.id is None and answer.is_response and answer.is_error:
            raw_id = request.raw_at(("id",)) if isinstance(request, Message) else None
            return answer.with_value(("id",), request_id, raw_id)
        return answer

    def _request_failed(self, request_id: RequestId | None, reason: str, status: int | None = None) -> None:
        if request_id is None:
            self.listener.on_backend_log(self, reason)
            return
        code = jsonrpc.BACKEND_LOST if status is None else jsonrpc.INTERNAL_ERROR
        text = f"backend '{self.backend}' did not answer: {reason}"
        err = jsonrpc.error(request_id, code, text, jsonrpc.backend_fault(self.backend))
        self.listener.on_backend_message(self, err, request_id, status)

    async def _read_stream(self, request_id: RequestId, resp: Response) -> None:
        answered = False
        last_event_id: str | None = None
        failure: str | None = None
        decoder = SSEDecoder(self.max_message)
        try:
            while True:
                try:
                    async for chunk in resp.iter_chunks():
                        for ev in decoder.feed(chunk):
                            if ev.id:
                                last_event_id = ev.id
                            if ev.too_large:
                                m = self.oversized(ev.too_large, request_id, ev.head, ev.tail)
                            elif ev.event != "message" or not ev.raw:
                                continue
                            else:
                                m = self._decode_event(ev.raw)
                            if m is None:
                                continue
                            m = self._addressed(m, request_id)
                            if m.is_response and m.id == request_id:
                                answered = True
                            self.listener.on_backend_message(self, m, request_id, resp.status)
                except CONNECT_ERRORS as exc:
                    failure = f"backend connection broke while answering: {exc or type(exc).__name__}"
                finally:
                    resp.release()
                if answered or failure or self.closing or last_event_id is None or self.mode != "handshake":
                    break
                # The server closed the stream early but gave event ids: resume it (SSE polling, 2025-11-25).
                resumed = await self._resume(last_event_id)
                if resumed is None:
                    break
                resp = resumed
                decoder = SSEDecoder(self.max_message)
        except asyncio.CancelledError:
            resp.release()
            raise
        if not answered and not self.closing:
            self._request_failed(request_id, failure or "backend closed the response stream without answering")
            if failure and self.mode == "handshake":
                self.lost(failure)

    async def _resume(self, last_event_id: str) -> Response | None:
        headers = self._headers({"Accept": "text/event-stream", "Last-Event-ID": last_event_id})
        headers.pop("Content-Type", None)
        try:
            resp = await self.http.request("GET", self.url, headers=headers)
        except CONNECT_ERRORS:
            return None
        if resp.status != 200:
            resp.release()
            return None
        return resp

    def _decode_event(self, raw: bytes) -> Message | None:
        try:
            messages, _ = jsonrpc.parse_body(raw)
        except jsonrpc.ProtocolError as exc:
            self.listener.on_backend_log(
                self,
                f"backend sent invalid JSON-RPC on its stream ({exc.message}): {raw[:200].decode('utf-8', 'replace')}",
                garbage=True,
            )
            return None
        return messages[0]

    def start_get_stream(self) -> None:
        """Open the standalone stream for server-initiated messages (handshake era, after initialize)."""
        if self._get_task is None and self.mode == "handshake" and self.session_id:
            self._get_task = asyncio.create_task(self._get_stream())

    async def _get_stream(self) -> None:
        headers = self._headers({"Accept": "text/event-stream"})
        headers.pop("Content-Type", None)
        attempts = 0
        while self.alive and not self.closing:
            try:
                resp = await self.http.request("GET", self.url, headers=headers)
            except CONNECT_ERRORS as exc:
                self.lost(f"backend stream connection failed: {exc or type(exc).__name__}")
                return
            if resp.status == 405:
                resp.release()
                return  # the backend offers no standalone stream; nothing to watch
            if resp.status == 404:
                resp.release()
                self.lost("backend answered 404 for its session (it restarted)")
                return
            if resp.status != 200:
                resp.release()
                return
            decoder = SSEDecoder(self.max_message)
            got_any = False
            try:
                async for chunk in resp.iter_chunks():
                    for ev in decoder.feed(chunk):
                        got_any = True
                        if ev.id:
                            headers["Last-Event-ID"] = ev.id
                        if ev.too_large:
                            m = self.oversized(ev.too_large, None, ev.head, ev.tail)
                        elif ev.event != "message" or not ev.raw:
                            continue
                        else:
                            m = self._decode_event(ev.raw)
                        if m is not None:
                            self.listener.on_backend_message(self, m, None, 200)
            except CONNECT_ERRORS as exc:
                self.lost(f"backend stream dropped: {exc or type(exc).__name__}")
                return
            finally:
                resp.release()
                # A clean end may be the server rotating the stream; reconnect, but not in a tight loop.
            attempts = 0 if got_any else attempts + 1
            if attempts >= 3:
                return

    def _forget_stream(self, rid: RequestId, task: asyncio.Task[None]) -> None:
        if self._streams.get(rid) is task:
            del self._streams[rid]

    def cancel(self, request_id: RequestId) -> None:
        task = self._streams.pop(request_id, None)
        if task is not None:
            task.cancel()
        resp = self._waiting_now.pop(request_id, None)
        if resp is not None:
            # Modern era: the backend learns of a cancellation by its request's stream closing.
            resp.on_progress = None
            resp.release()

    async def close(self) -> None:
        self.closing = True
        self.alive = False
        tasks = [t for t in (*self._streams.values(), self._get_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        if self.session_id and self.mode == "handshake":
            with contextlib.suppress(*CONNECT_ERRORS):
                resp = await self.http.request("DELETE", self.url, headers=self._headers(None), timeout=2)
                resp.release()
