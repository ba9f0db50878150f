"""A lean HTTP/1.1 client for the backends: pooled keep-alive connections, asyncio protocols, httptools.

aiohttp cost more CPU per forwarded call than the rest of the router's hot path together (yarl URLs,
multidicts, request and response objects with timers and traces). The router needs little of it: POST
and GET to a handful of backend URLs, JSON bodies or SSE streams back. This is that much and no more.

Errors are OSErrors, so one `except OSError` covers every way a backend can fail us:
`ConnectFailed` means nothing was sent (the caller may send it again), `ConnectionBroke` means the
request may have reached the backend.
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

CONNECT_TIMEOUT = 5.0
MAX_IDLE_PER_HOST = 64
# uvicorn, Node and hypercorn close a kept-alive connection after 5 s idle. A POST written as the
# server closes is lost without a word, and cannot be safely sent again (the server may have run
# it), so the pool never reuses a connection that has been idle long enough to be closing.
IDLE_TTL = 4.0
IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
# A stream the router reads slower than the backend writes stops being read past this much.
READ_HIGH_WATER = 1 << 20


class ConnectFailed(OSError):
    """No connection could be made: nothing was sent."""


class ConnectionBroke(OSError):
    """The connection failed after the request was written: the backend may have acted on it."""


class BodyTooLarge(ConnectionBroke):
    """A body read whole was over the caller's limit: the connection is dropped, not drained."""

    def __init__(self, size: int | None, limit: int) -> None:
        super().__init__(f"body of {size if size is not None else 'more than ' + str(limit)} bytes, over {limit}")
        self.size = size  # None: no Content-Length, so only "more than the limit" is known
        self.limit = limit


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: bytes
    host_header: bytes
    origin: tuple[str, str, int]  # (scheme, host, port): the pool's key, asked for on every request


def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default_port else f"{shown}:{port}"
    return _Target(parts.scheme, host, port, path.encode(), host_header.encode(), (parts.scheme, host, port))


# Header blocks encoded before, by their (name, value) pairs: a channel sends the same few headers
# call after call. Never one with credentials (a client's forwarded token, a backend's own).
_HEADER_BLOCKS: dict[tuple[tuple[str, str], ...], bytes] = {}
_HEADER_BLOCKS_MAX = 256
_SECRET_NAMES = frozenset({"authorization", "proxy-authorization", "cookie"})


def _header_block(headers: Mapping[str, str]) -> bytes:
    """The "name: value" lines of `headers`, each ended by CRLF."""
    pairs = tuple(headers.items())
    block = _HEADER_BLOCKS.get(pairs)
    if block is None:
        # Joined in C: no Python frame per header.
        block = "\r\n".join(map(": ".join, pairs)).encode("latin-1") + b"\r\n"
        if _SECRET_NAMES.isdisjoint(name.lower() for name in headers):
            if len(_HEADER_BLOCKS) >= _HEADER_BLOCKS_MAX:
                _HEADER_BLOCKS.clear()
            _HEADER_BLOCKS[pairs] = block
    return block


def _encode_request(t: _Target, method: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
    block = _header_block(headers) if headers else b""
    if body or method in ("POST", "PUT", "PATCH"):
        # One formatting, not a concatenation per part (each a copy of all before it).
        return b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
            method.encode(),
            t.path,
            t.host_header,
            block,
            len(body),
            body,
        )
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method.encode(), t.path, t.host_header, block)


class Response:
    """One response: status and headers at once, the body as it arrives."""

    # Where each starts (set on the instance when it changes): one response per call on the hot
    # path, so its __init__ sets only what must be its own.
    status = 0
    headers: Mapping[str, str] = {}  # names in lower case (may be shared: never changed)
    complete = False
    keep_alive = False
    buffered = 0  # body bytes received and not yet taken
    failure: OSError | None = None  # why the response broke, if it did
    _waiter: asyncio.Future[None] | None = None
    _whole = False  # read() wants the whole body: no flow control, a size limit instead
    until_eof = False  # no length and not chunked: the body ends when the connection does
    # Set by a caller that takes the response without a task (`HTTPClient.send_now`): called
    # when the head is in, when the body passes READ_HIGH_WATER, when it ends and when it fails.
    on_progress: Callable[[Response], None] | None = None

    def __init__(self, conn: _Connection, waited: bool = True) -> None:
        self._conn: _Connection | None = conn
        # Done when the head is in (or failed): for a caller that awaits it (`request`). One taken
        # without a task (`send_now`) has none: `on_progress` tells it.
        self.head: asyncio.Future[None] | None = conn.loop.create_future() if waited else None
        self._chunks: collections.deque[bytes] = collections.deque()

    # -- fed by the connection
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self.buffered += len(data)
        if self.buffered > READ_HIGH_WATER and self._conn is not None and not self._whole:
            if self.on_progress is not None:
                self.on_progress(self)  # past the bound: it must take over (and read) before we pause
            if self.on_progress is None:
                self._conn.pause()
        self._wake_reader()

    def _finish(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, exc: OSError) -> None:
        if self.complete:
            return
        self.failure = exc
        head = self.head
        if head is not None and not head.done():
            head.set_exception(exc)
            head.exception()  # retrieved here: the caller may have stopped waiting
        self._wake()

    def _wake(self) -> None:
        self._wake_reader()
        if self.on_progress is not None:
            self.on_progress(self)

    def _wake_reader(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take_body(self, release: bool = True) -> bytes:
        """The whole body of a complete response, read without waiting (see `on_progress`).

        `release=False`: the caller releases the response itself, later (the hot path: after the
        answer is on its way to the client, whose wait then does not include it).
        """
        assert self.complete
        body = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
        self._chunks.clear()
        self.buffered = 0
        if release:
            self.release()
        return body

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    # -- for the caller
    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (then the connection goes back to the pool); BodyTooLarge past `limit`.

        Reading the whole body is not paused at READ_HIGH_WATER (nothing would ever resume it):
        `limit` is what bounds it.
        """
        self._whole = True
        if self._conn is not None:
            self._conn.resume()
        if limit is not None:
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(int(declared), limit)
        while not self.complete:
            if self.failure is not None:
                raise self.failure
            if limit is not None and self.buffered > limit:
                raise BodyTooLarge(None, limit)
            await self._wait()
        if limit is not None and self.buffered > limit:
            raise BodyTooLarge(self.buffered, limit)
        body = b"".join(self._chunks)
        self._chunks.clear()
        self.release()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, until the response ends. Raises ConnectionBroke if it breaks."""
        while True:
            while self._chunks:
                data = self._chunks.popleft()
                self.buffered -= len(data)
                if self._conn is not None and self.buffered <= READ_HIGH_WATER:
                    self._conn.resume()
                yield data
            if self.complete:
                return
            if self.failure is not None:
                raise self.failure
            await self._wait()

    def release(self) -> None:
        """Done with this response: a finished one gives its connection back, an unfinished one closes it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(self)


# Header lines of answers read before, (name, value) as bytes to (lower-case name, value) as text:
# a backend sends the same few headers on every answer (Date and Content-Length vary among few
# values), and decoding them again was a dict comprehension of four calls per header per answer.
_HEADERS: dict[tuple[bytes, bytes], tuple[str, str]] = {}
_HEADERS_MAX = 1024
# Whole sets of header lines read before (joined), to what they read as: one lookup instead of one
# per line. Date changes each second: then the set is new (and its lines, read before, are looked up).
_HEADER_SETS: dict[bytes, Mapping[str, str]] = {}
_HEADER_SETS_MAX = 256
_HEADER_SET_KEPT_MAX = 4096  # bytes
# A backend's cookies and session ids are read anew each time, never kept past their answer.
_NOT_KEPT = frozenset({"set-cookie", "mcp-session-id"})


def _decode_headers(raw: list[bytes]) -> dict[str, str]:
    """Headers by lower-case name from `raw`: name, value, name, value, ... as the parser gave them."""
    if len(_HEADERS) > _HEADERS_MAX:
        _HEADERS.clear()
    headers = {}
    for pair in zip(raw[::2], raw[1::2], strict=True):
        text = _HEADERS.get(pair)
        if text is None:
            text = (pair[0].decode("latin-1").lower(), pair[1].decode("latin-1"))
            if text[0] not in _NOT_KEPT:
                _HEADERS[pair] = text
        headers[text[0]] = text[1]
    return headers


class _HeadReader:
    """What httptools reports of one response head (see `_read_head`)."""

    __slots__ = ("keep_alive", "parser", "raw")

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.keep_alive: bool | None = None  # None: the head did not end
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.raw += (name, value)

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        # Asked now: a head with Content-Length: 0 is a whole message, and once it ends the parser
        # says False (a notification's 202 would close its connection).
        self.keep_alive = self.parser.should_keep_alive()


# A response head read whole: status, headers (see `_decode_headers`), body length, keep-alive.
_WholeHead = tuple[int, Mapping[str, str], int, bool]
# Response heads read before, by their bytes: a backend sends the same head answer after answer
# (Date changes each second; Content-Length among few values). A length of -1: the parser's.
_WHOLE_HEADS: dict[bytes, _WholeHead] = {}
_WHOLE_HEADS_MAX = 256


_NOT_WHOLE: _WholeHead = (0, {}, -1, False)  # a head httptools could not read: the parser's, never kept


def _read_head(head: bytes) -> _WholeHead:
    """A response head read by httptools, with a length of -1 unless its body is plainly Content-Length bytes."""
    reader = _HeadReader()
    parser = reader.parser = httptools.HttpResponseParser(reader)
    try:
        parser.feed_data(head)
    except httptools.HttpParserError:
        return _NOT_WHOLE  # the parser proper says why, on the usual path
    if reader.keep_alive is None:
        return _NOT_WHOLE
    headers = _decode_headers(reader.raw)
    length = headers.get("content-length", "")
    if "transfer-encoding" in headers or not length.isdigit() or len(reader.raw) // 2 != len(headers):
        # Chunked, or to the end, or a name given twice: the parser's, with all its rules. Its headers
        # still say whether the head may be kept (it may carry a session id).
        return 0, headers, -1, False
    return parser.get_status_code(), headers, int(length), reader.keep_alive


def _read_whole(resp: Response, data: bytes) -> bool:
    """Take `data` as the whole of `resp`, if it is exactly one response with a plain head.

    The hot path's answers come so, in one read: this reads them without the parser's callbacks
    (a Python call per header, the head, the body and the end). Anything else is left to the
    parser, which has seen none of it.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = data[: end + 4]
    known = _WHOLE_HEADS.get(head)
    if known is None:
        known = _read_head(head)
        if known is not _NOT_WHOLE and len(head) <= _HEADER_SET_KEPT_MAX and _NOT_KEPT.isdisjoint(known[1]):
            if len(_WHOLE_HEADS) >= _WHOLE_HEADS_MAX:
                _WHOLE_HEADS.clear()
            _WHOLE_HEADS[head] = known
    if known[2] != len(data) - end - 4:
        return False
    resp.status, resp.headers, length, resp.keep_alive = known
    if length:
        resp._chunks.append(data[end + 4 :])
        resp.buffered = length
    resp.complete = True
    assert resp.on_progress is not None
    resp.on_progress(resp)
    return True


class _Connection(asyncio.Protocol):
    def __init__(self, pool: HTTPClient, origin: tuple[str, str, int]) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = asyncio.get_running_loop()  # made inside the loop's create_connection
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.closed = False
        self.got_bytes = False  # any byte of the current response seen yet
        self._headers: list[bytes] = []  # of the response being read: name, value, name, value, ...
        self._paused = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:
            self.close()  # an idle connection has nothing to say; a server that speaks anyway is broken
            return
        if not self.got_bytes:
            self.got_bytes = True
            if resp.on_progress is not None and _read_whole(resp, data):
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            resp._fail(ConnectionBroke(f"backend sent invalid HTTP: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        resp = self.response
        if resp is None or resp.complete:
            return
        if resp.status and resp.until_eof and exc is None:  # (the head is in)
            resp._finish()
            return
        reason = str(exc) if exc else "the backend closed the connection"
        resp._fail(ConnectionBroke(reason))

    def pause_writing(self) -> None:  # requests are small; nothing to hold back
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        resp = self.response
        if resp is None or resp.complete:
            # More than one answer to one request (or bytes past its length), in the read that ended
            # it or before it was taken: the server is broken. Raised to stop the parser before any of
            # it is read into an answer; `data_received` closes the connection, as for an idle one.
            raise ConnectionBroke("backend sent more than its answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers += (name, value)

    def on_headers_complete(self) -> None:
        resp = self.response
        if resp is None:
            return
        resp.status = self.parser.get_status_code()
        raw = self._headers
        self._headers = []
        # No name or value holds a CRLF (the parser ends them there): the key is this set's alone.
        key = b"\r\n".join(raw)
        headers = _HEADER_SETS.get(key)
        if headers is None:
            headers = _decode_headers(raw)
            if len(key) <= _HEADER_SET_KEPT_MAX and _NOT_KEPT.isdisjoint(headers):
                if len(_HEADER_SETS) >= _HEADER_SETS_MAX:
                    _HEADER_SETS.clear()
                _HEADER_SETS[key] = headers
        resp.headers = headers
        resp.keep_alive = self.parser.should_keep_alive()
        resp.until_eof = "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
        head = resp.head
        if head is None:
            if resp.on_progress is not None:
                resp.on_progress(resp)
        elif not head.done():
            head.set_result(None)
            if resp.on_progress is not None:
                resp.on_progress(resp)

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:
            self.response._finish()

    # -- for the pool
    def send(self, resp: Response, data: bytes) -> None:
        assert self.transport is not None
        self.response = resp
        self.got_bytes = False
        self.transport.write(data)

    def finished(self, resp: Response) -> None:
        if self.response is not resp:
            return
        self.response = None
        if resp.complete and resp.keep_alive and not self.closed:
            if self._paused:  # (rarely: a large body read whole)
                self.resume()
            self.pool.put_idle(self)
        else:
            self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class HTTPClient:
    """Keep-alive connections to the backends, reused most recently used first."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._targets: dict[str, _Target] = {}
        self._ssl: ssl.SSLContext | None = None
        self.closed = False

    def _target(self, url: str) -> _Target:
        t = self._targets.get(url)
        if t is None:
            t = _target(url)
            if len(self._targets) > 1024:
                self._targets.clear()
            self._targets[url] = t
        return t

    async def request(
        self,
        method: str,
        url: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send a request and return once the response's head is in. The caller must read or release it."""
        t = self._target(url)
        data = _encode_request(t, method, body, headers)
        retry = method in IDEMPOTENT
        if timeout is None:
            return await self._exchange(t, data, retry)
        async with asyncio.timeout(timeout):
            return await self._exchange(t, data, retry)

    async def _exchange(self, t: _Target, data: bytes, retry: bool) -> Response:
        while True:
            conn = self.take_idle_at(t.origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(t)
            resp = Response(conn)
            conn.send(resp, data)
            assert resp.head is not None
            try:
                await resp.head
            except ConnectionBroke:
                if retry and reused and not conn.got_bytes:
                    retry = False
                    continue  # the server closed a kept-alive connection as we used it
                raise
            except BaseException:
                resp.release()
                raise
            return resp

    def take_idle(self, url: str) -> _Connection | None:
        """A kept-alive connection to `url` for `send_now`, if one is idle (give it back with `put_idle`)."""
        return self.take_idle_at(self.origin(url))

    def origin(self, url: str) -> tuple[str, str, int]:
        """`url`'s pool key, for `take_idle_at`."""
        return self._target(url).origin

    def request_head(self, method: str, url: str, headers: Mapping[str, str]) -> tuple[bytes, bool]:
        """A request's line and headers up to its Content-Length's value, for `send_now`; and
        whether it may be kept for later requests (it carries no credentials)."""
        head = _encode_request(self._target(url), method, b"", headers)
        assert head.endswith(b"Content-Length: 0\r\n\r\n")
        head = head[:-5]
        return head, _SECRET_NAMES.isdisjoint(name.lower() for name in headers)

    def send_now(
        self, conn: _Connection, head: bytes, body: bytes, on_progress: Callable[[Response], None]
    ) -> Response:
        """Send a request (its `request_head`, then `body`) on `conn` (from `take_idle`) without waiting.

        The hot path: no task waits for the answer; `on_progress` sees the response (its head,
        its end or failure) from the connection's own callbacks. A caller that needs to wait
        after all sets `on_progress` to None and awaits as usual.
        """
        resp = Response(conn, waited=False)
        resp.on_progress = on_progress
        conn.send(resp, b"%s%d\r\n\r\n%s" % (head, len(body), body))
        return resp

    def take_idle_at(self, origin: tuple[str, str, int]) -> _Connection | None:
        """A kept-alive connection to `origin` (see `origin`), if one is idle and young enough."""
        idle = self._idle.get(origin)
        if not idle:
            return None
        oldest_usable = time.monotonic() - IDLE_TTL
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            if conn.idle_since < oldest_usable:
                conn.close()  # and the rest of the list is older still
                for stale in idle:
                    stale.close()
                idle.clear()
                return None
            return conn
        return None

    async def _connect(self, t: _Target) -> _Connection:
        if self.closed:
            raise ConnectFailed("the router is stopping")
        loop = asyncio.get_running_loop()
        sslctx: ssl.SSLContext | None = None
        if t.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            sslctx = self._ssl
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, t.origin),
                    t.host,
                    t.port,
                    ssl=sslctx,
                    server_hostname=t.host if sslctx else None,
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {t.host}:{t.port} timed out") from None
        except ssl.SSLError as exc:
            detail = getattr(exc, "verify_message", None)
            raise ConnectFailed(
                f"TLS handshake failed: {exc.reason or exc}" + (f" ({detail})" if detail else "")
            ) from None
        except OSError as exc:
            # asyncio words it "Connect call failed (addr)", uvloop "Connection refused": say the latter.
            reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
            raise ConnectFailed(reason) from None
        self._all.add(conn)
        return conn

    def put_idle(self, conn: _Connection) -> None:
        idle = self._idle.setdefault(conn.origin, [])
        if self.closed or len(idle) >= MAX_IDLE_PER_HOST:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    def forget(self, conn: _Connection) -> None:
        self._all.discard(conn)
        idle = self._idle.get(conn.origin)
        if idle and conn in idle:
            idle.remove(conn)

    async def close(self) -> None:
        self.closed = True
        for conn in list(self._all):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)  # the transports call connection_lost on the next loop turn
