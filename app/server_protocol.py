"""uvicorn's httptools protocol, with the router's hot path in front of the ASGI app.

A small POST is held until its body is whole and offered to the app's `post_now`, which serves a
plain modern-era call with no task at all: the request goes out from this protocol's callback and
the answer comes back from the backend connection's (see `StreamableEndpoint.post_now`). Whatever
it does not take is served through ASGI as before.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, then
the body separately: two socket writes per JSON answer. That second write is a measurable share of
the per-call cost, so the head waits for the first body chunk.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from app.proxy.asgi import ABORT_HOOK, DISCONNECT_HOOKS

COALESCE_MAX = 64 * 1024
# POSTs up to this size are held until whole and offered to the app's hot path first.
DIRECT_BODY_MAX = 64 * 1024


class _CoalescingTransport:
    """Holds the response head until the first body write (or close), then writes both at once."""

    __slots__ = ("_held", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started:
            # The first write of a cycle is always its head (uvicorn writes it in one piece).
            self._started = True
            self._held = data
            return
        if self._held is not None:
            if len(data) > COALESCE_MAX:
                self._flush()  # joining would copy a large body once more for no gain
            else:
                data = self._held + data
                self._held = None
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _DirectReply:
    """Answers a request the app took on the hot path: writes the response, or hands it to ASGI."""

    __slots__ = ("body", "headers", "protocol", "scope")

    def __init__(
        self, protocol: CoalescingHttpToolsProtocol, scope: Any, headers: dict[bytes, bytes], body: bytes
    ) -> None:
        self.protocol = protocol
        self.scope = scope
        self.headers = headers
        self.body = body

    def respond(self, status: int, body: bytes) -> None:
        self.protocol.direct_done(self, status, body)

    def hand_over(self) -> None:
        self.protocol.direct_to_asgi(self)


# The app's hot path: (scope, headers by lower-case name, body, reply) -> taken.
DirectApp = Callable[[Any, dict[bytes, bytes], bytes, _DirectReply], bool]


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Also tells the app at once when a client goes away (see `app.proxy.asgi.watch_disconnect`),
    and offers each small POST to the app's hot path (`post_now`) before uvicorn sees it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_message = False  # uvicorn's parser is inside a request
        self._partial = b""  # the start of a request not yet whole, held for the hot path
        self._partial_head: tuple[int, tuple[bytes, dict[bytes, bytes], int]] | None = None
        self._direct: _DirectReply | None = None  # the hot-path request in flight
        self._backlog = b""  # what the client sent meanwhile (pipelined), served after it
        self._close_after = False  # shut down while a hot-path request was in flight
        self._last_activity = 0.0  # loop time of the last request or answer (the keep-alive timer's)
        self._defaults: list[tuple[bytes, bytes]] | None = None  # uvicorn's default headers, and as bytes
        self._defaults_head = b""
        self._direct_app: DirectApp | None = getattr(self.app, "post_now", None)

    # -- the hot path
    def data_received(self, data: bytes) -> None:
        if self._direct is not None:
            self._backlog += data  # answered in order: after the request in flight
            if len(self._backlog) > DIRECT_BODY_MAX:
                self.flow.pause_reading()
            return
        if self._partial:
            data = self._partial + data
            self._partial = b""
        post_now = self._direct_app
        if (
            post_now is not None
            and not self._in_message
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
            and data[:5] == b"POST "  # (`startswith` parses its arguments: more than this costs)
        ):
            # The keep-alive timer stays armed: it checks for activity when it fires (one timer
            # per idle spell, not one per call).
            self._last_activity = self.loop.time()
            used = self._offer(post_now, data)
            if used is None:
                return  # held (incomplete) or taken whole
            data = used
            if not data:
                return
        super().data_received(data)

    def _offer(self, post_now: DirectApp, data: bytes) -> bytes | None:
        """Serve `data`'s first request on the hot path if the app takes it.

        Returns the bytes uvicorn must still see (all of them when the app declined), or None
        when they were held (an incomplete request) or consumed (the rest waits in the backlog).
        """
        held = self._partial_head
        self._partial_head = None
        if held is not None:
            end, request = held
        else:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) <= DIRECT_BODY_MAX:
                    self._partial = data
                    return None
                return data
            head = data[: end + 4]
            parsed = _HEADS.get(head)  # (a head seen before: `_parse_head`'s first step, without its frame)
            if parsed is None:
                # A session's request: the full path's (the hot path takes only the stateless), sent
                # on before its head is read. One search first (lower-casing the head costs more than
                # reading it); a name in capitals that it misses is found in the head's dict instead.
                if data.find(b"ession-", 0, end) >= 0 and head.lower().find(b"\r\nmcp-session-id:") >= 0:
                    return data
                parsed = _parse_head(head)
                if parsed is None:
                    return data
            request = parsed
        target, headers, length = request
        if length > DIRECT_BODY_MAX:
            return data
        body_end = end + 4 + length
        if len(data) < body_end:
            self._partial = data
            self._partial_head = (end, request)  # the head is whole: only the body is awaited
            return None
        path, query, path_text = _split_target(self.root_path, target)
        # What the hot path reads; the rest of an ASGI scope (its header list among it) is added if
        # it hands the request over. The headers go to the app as the dict.
        scope = {
            "type": "http",
            "method": "POST",
            "path": path_text,
            "raw_path": path,
            "query_string": query,
            DISCONNECT_HOOKS: [],
        }
        reply = _DirectReply(self, scope, headers, data[end + 4 : body_end])
        self._direct = reply
        try:
            taken = bool(post_now(scope, headers, reply.body, reply))
        except Exception:  # the full path answers it, errors included
            self.logger.exception("the hot path failed on a request; serving it the usual way")
            taken = False
        if not taken:
            self._direct = None
            return data
        if body_end == len(data):
            return None  # (the common case: nothing pipelined behind it)
        if self._direct is reply:
            self._backlog += data[body_end:]
        else:
            self.data_received(data[body_end:])  # answered already: go on with what follows
        return None

    def direct_done(self, reply: _DirectReply, status: int, body: bytes) -> None:
        if self._direct is not reply:
            return
        self._direct = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        defaults = self.server_state.default_headers
        if defaults is not self._defaults:  # uvicorn makes a new list when its Date changes (each second)
            self._defaults = defaults
            self._defaults_head = b"".join([name + b": " + value + b"\r\n" for name, value in defaults])
        head = b"%scontent-type: application/json\r\ncontent-length: %d\r\n%s%s\r\n" % (
            STATUS_LINE[status],
            len(body),
            self._defaults_head,
            b"connection: close\r\n" if self._close_after else b"",
        )
        if len(body) > COALESCE_MAX:
            transport.write(head)  # (joined, a large body would be copied once more for no gain)
            transport.write(body)
        else:
            transport.write(head + body)
        self.server_state.total_requests += 1
        if self._close_after:
            transport.close()
            return
        if self.flow.read_paused:  # (by a backlog: rare, so no call to find out)
            self.flow.resume_reading()
        self._last_activity = self.loop.time()
        backlog, self._backlog = self._backlog, b""
        if backlog:
            self.data_received(backlog)
        elif self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def direct_to_asgi(self, reply: _DirectReply) -> None:
        """A hot-path request that needs a task after all: uvicorn's cycle, with the body already read."""
        if self._direct is not reply:
            return
        self._direct = None
        scope = reply.scope
        scope.update(
            {
                "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
                "http_version": "1.1",
                "server": self.server,
                "client": self.client,
                "scheme": self.scheme,
                "root_path": self.root_path,
                "raw_path": self.root_path.encode("ascii") + scope["raw_path"],
                "headers": list(reply.headers.items()),
                "state": self.app_state.copy(),
            }
        )
        cycle = RequestResponseCycle(
            scope=reply.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=not self._close_after,
            on_response=self.on_response_complete,
        )
        cycle.body = bytearray(reply.body)
        cycle.more_body = False
        self.cycle = cycle
        self._start_asgi_task(cycle, self.app)
        backlog, self._backlog = self._backlog, b""
        if backlog:
            self.flow.resume_reading()
            super().data_received(backlog)  # uvicorn queues it behind the cycle (pipelining)

    # -- uvicorn's own path
    def on_message_begin(self) -> None:
        self._in_message = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self._in_message = False
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.transport = _CoalescingTransport(cycle.transport)  # type: ignore[assignment]
        scope: Any = cycle.scope
        scope.setdefault(DISCONNECT_HOOKS, [])
        scope.setdefault(ABORT_HOOK, self.transport.abort)
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        self._last_activity = self.loop.time()
        super().on_response_complete()

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        if self._direct is not None or (self.cycle is not None and not self.cycle.response_complete):
            return  # a request in flight: the timer is armed again when it is answered
        idle = self.loop.time() - self._last_activity
        if idle < self.timeout_keep_alive:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive - idle, self.timeout_keep_alive_handler
            )
            return
        super().timeout_keep_alive_handler()

    def shutdown(self) -> None:
        if self._direct is not None:
            self._close_after = True  # closed once its answer is written
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        cycle = self.cycle
        direct, self._direct = self._direct, None
        self._partial = self._backlog = b""
        self._partial_head = None
        super().connection_lost(exc)
        hooks: list[Callable[[], None]] = []
        if direct is not None:
            hooks = direct.scope[DISCONNECT_HOOKS]
        elif cycle is not None and cycle.disconnected:
            hooks = cycle.scope.get(DISCONNECT_HOOKS) or []  # type: ignore[assignment]
        for hook in list(hooks):
            hook()


_TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# What a line of a head may not hold: control characters but TAB (a bare CR or LF among them).
_CTL = bytes(b for b in range(256) if (b < 0x20 and b != 0x09) or b == 0x7F)

# Header lines read before, to what they read as: (lower-case name, value). A client sends the
# same lines call after call (only a few, like Content-Length, vary, and among few values), and
# every check of a line is the line's own, so a line found here is one already checked. Reading
# it again is most of the cost of a head (a bytes object per part, per case, per strip).
_HEADER_LINES: dict[bytes, tuple[bytes, bytes]] = {}
_HEADER_LINES_MAX = 1024  # bounded: each client's varying lines come and go
# A client's credentials are read anew each time, never kept in the table past their request.
_NOT_KEPT = frozenset({b"authorization", b"proxy-authorization", b"cookie"})
# Request lines read before, to their target (a client posts to the same path call after call).
_REQUEST_LINES: dict[bytes, bytes] = {}
# Whole heads read before, to what they read as: a client sends the same head call after call but
# for Content-Length, whose values are few. One lookup then stands for the split, a lookup per line
# and the dict. Heads with credentials are not kept (see `_NOT_KEPT`), nor long ones.
_HEADS: dict[bytes, tuple[bytes, dict[bytes, bytes], int]] = {}
_HEADS_MAX = 256
_HEAD_KEPT_MAX = 4096  # bytes: the table holds at most a megabyte


@functools.lru_cache(maxsize=256)
def _split_target(root_path: str, target: bytes) -> tuple[bytes, bytes, str]:
    """A request target's path, query, and the scope's path text (a client posts to the same one)."""
    path, _, query = target.partition(b"?")
    return path, query, root_path + path.decode("ascii")


def _header_line(line: bytes) -> tuple[bytes, bytes] | None:
    """(lower-case name, value) of a header line httptools reads the same way; None for any other."""
    name, sep, value = line.partition(b":")
    if not sep or not name or name.translate(None, _TOKEN_CHARS) or len(line.translate(None, _CTL)) != len(line):
        return None
    return name.lower(), value.lstrip(b" \t")  # trailing whitespace is kept, as httptools keeps it


def _request_target(line: bytes) -> bytes | None:
    """The target of a request line `POST /path HTTP/1.1` the hot path takes; None for any other."""
    parts = line.split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1" or not parts[1].startswith(b"/") or parts[1].find(b"%") >= 0:
        return None
    target = parts[1]
    if not target.isascii() or len(target.translate(None, _CTL)) != len(target):
        return None
    return target


def _parse_head(head: bytes) -> tuple[bytes, dict[bytes, bytes], int] | None:
    """The target, headers (lower-case names) and body length of a plain HTTP/1.1 POST head; None
    for anything else. The headers may be shared with other requests: read them, never change them.

    `head` ends with the blank line. Deliberately narrow: whatever it does not recognise (another
    version, chunked bodies, an Expect or Upgrade, a percent-encoded path, a malformed line, a
    repeated header) is left to uvicorn's parser. Written for cost, as it runs on every call: a
    head seen before is looked up whole (`_HEADS`), and so are the request line and header lines
    of one that is not (`_REQUEST_LINES`, `_HEADER_LINES`), the header lines in C; `translate` finds a
    character that may not be there (a regex costs more than the rest of the request), and `find`
    stands for `in` (which for bytes first tries the operand as an integer and formats an exception).
    """
    parsed = _HEADS.get(head)
    if parsed is not None:
        return parsed
    lines = head.split(b"\r\n")
    del lines[-2:]  # the blank line's
    target = _REQUEST_LINES.get(lines[0])
    if target is None:
        target = _request_target(lines[0])
        if target is None:
            return None
        if len(_REQUEST_LINES) >= _HEADER_LINES_MAX:
            _REQUEST_LINES.clear()
        _REQUEST_LINES[lines[0]] = target
    known = _HEADER_LINES
    try:
        headers = dict(map(known.__getitem__, lines[1:]))
    except KeyError:  # a line not seen before: read each, and remember it
        pairs: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            pair = known.get(line)
            if pair is None:
                pair = _header_line(line)
                if pair is None:
                    return None
                if pair[0] not in _NOT_KEPT:
                    if len(known) >= _HEADER_LINES_MAX:
                        known.clear()
                    known[line] = pair
            pairs.append(pair)
        headers = dict(pairs)
    if len(headers) != len(lines) - 1:
        return None  # a repeated header (`header()` would read only the first)
    length = headers.get(b"content-length")
    if length is None or not length.isdigit():
        return None
    if b"transfer-encoding" in headers or b"expect" in headers or b"upgrade" in headers:
        return None  # more than one plain request and answer: uvicorn's path handles them
    connection = headers.get(b"connection")
    if connection is not None and connection.lower() != b"keep-alive":
        return None
    parsed = target, headers, int(length)
    if len(head) <= _HEAD_KEPT_MAX and _NOT_KEPT.isdisjoint(headers):
        if len(_HEADS) >= _HEADS_MAX:
            _HEADS.clear()
        _HEADS[head] = parsed
    return parsed
