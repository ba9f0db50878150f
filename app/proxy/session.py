"""A client session the router owns: it outlives backend connections and rebuilds them.

The client talks to the session; the session talks to whichever backend channel is current. When a
channel dies the session fails what was in flight on it, holds new requests, and, once the backend
is back, opens a new channel, replays the client's handshake and restores its state.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from app.proxy import jsonrpc
from app.proxy.calls import RouterCallError, RouterCalls, catalog_changes, list_catalog
from app.proxy.channels.base import BackendUnavailable, Channel, ChannelMode
from app.proxy.channels.stdio import StdioChannel
from app.proxy.channels.streamable import StreamableHTTPChannel
from app.proxy.events import SessionEvent, TrafficEvent
from app.proxy.jsonrpc import JSON, Message, RequestId
from app.proxy.streams import Outbox, PostStream, Sink

if TYPE_CHECKING:
    from app.proxy.backend import Backend
    from app.proxy.router import Router

Era = Literal["handshake", "modern"]
ClientTransport = Literal["streamable-http", "sse"]

LIST_CHANGED = {
    "tools": "notifications/tools/list_changed",
    "resources": "notifications/resources/list_changed",
    "prompts": "notifications/prompts/list_changed",
}
LIST_CHANGED_METHODS = frozenset(LIST_CHANGED.values())
LISTEN_FILTER_KEYS = {
    "tools": "toolsListChanged",
    "resources": "resourcesListChanged",
    "prompts": "promptsListChanged",
}
PROGRESS_TOKEN_PATH = ("params", "_meta", "progressToken")
# Requests safe to send twice: a backend that died with one in flight is sent it again (within the
# hold) rather than the client getting an error. A tools/call is, when its tool says so.
RESENDABLE = frozenset(
    {
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "server/discover",
        "ping",
    }
)
# Methods whose requests change what the session keeps (or hold a stream open): never on the hot path.
STATEFUL_METHODS = frozenset(
    {"initialize", "logging/setLevel", "resources/subscribe", "resources/unsubscribe", "subscriptions/listen"}
)
# Capabilities whose loss makes a session impossible to keep honestly.
KEPT_CAPABILITIES = ("tools", "resources", "prompts", "logging", "completions")


LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
META_LOG_LEVEL = "io.modelcontextprotocol/logLevel"


def _asked_for_log(request: Message, level: object) -> bool:
    meta = jsonrpc.msg_meta(request)
    wanted = meta.get(META_LOG_LEVEL) if isinstance(meta, dict) else None
    if wanted not in LOG_LEVELS or level not in LOG_LEVELS:
        return wanted is not None
    return LOG_LEVELS.index(str(level)) >= LOG_LEVELS.index(str(wanted))


class HoldExpired(Exception):
    pass


class SessionEnded(Exception):
    pass


@dataclass(slots=True, eq=False)
class Pending:
    client_id: RequestId
    backend_id: RequestId
    method: str
    msg: Message
    sink: Sink | None
    headers: Mapping[str, str] | None
    started: float = field(default_factory=time.perf_counter)
    channel: Channel | None = None
    token: str | int | None = None
    listen: bool = False
    acknowledged: bool = False
    # A shared session renames the client's id and progress token on the way to the backend; the
    # client's own bytes are put back on the way out.
    client_raw_id: bytes | None = None
    renamed: bool = False  # sent under a backend id of the session's own (client_raw_id restores it)
    client_token: str | int | None = None
    client_raw_token: bytes | None = None
    # Set when the request is re-sent after its backend died: the hold counts from the first loss.
    resend_deadline: float | None = None
    sent_on: Channel | None = None  # the channel of the latest attempt (answers from older ones are stale)


def _awaits(p: Pending, ch: Channel) -> bool:
    """Whether `p`'s answer is to come from `ch`: sent there, or being sent (its send has not
    returned: `channel` is set only then, and over HTTP a send lasts until the answer's head)."""
    return p.channel is ch or (p.channel is None and p.sent_on is ch and not p.listen)


class Session:
    def __init__(
        self,
        router: Router,
        backend: Backend,
        *,
        era: Era,
        client_transport: ClientTransport,
        shared: bool = False,
    ) -> None:
        self.router = router
        self.backend = backend
        self.era = era
        self.client_transport = client_transport
        # A shared session carries the modern-era requests of many clients over one channel, so
        # their ids are remapped to stay unique on it.
        self.shared = shared
        self.id = f"modern:{backend.name}" if shared else uuid.uuid4().hex
        self.created = time.time()
        self.channel: Channel | None = None
        self.calls = RouterCalls()
        self.pending: dict[RequestId, Pending] = {}
        self._by_token: dict[str | int, Pending] = {}
        # Server-to-client requests by the id the client sees: channel, backend's id (value, bytes), method.
        self.server_requests: dict[int, tuple[Channel, RequestId, bytes | None, str]] = {}
        self._server_ids = itertools.count(1)
        self._backend_ids = itertools.count(1)
        self.outbox = Outbox()
        # Answer streams a client may resume with Last-Event-ID (bounded: oldest finished go first).
        self.post_streams: dict[int, PostStream] = {}
        self._stream_numbers = itertools.count(1)
        self.init_msg: Message | None = None
        self.init_result: JSON | None = None
        self.protocol_version: str | None = None
        self.client_info: JSON | None = None
        self.log_level: str | None = None
        self.subscriptions: set[str] = set()
        # What the client last saw of the backend's lists; the modern era has no handshake to wait for.
        self.catalog: dict[str, list[JSON]] | None = backend.catalog if era == "modern" else None
        # A stdio backend runs one process per session, started from whatever code is on disk at
        # that moment: not necessarily the code the backend's catalog was taken from (a change
        # saved without a restart, or between the catalog and the session's start). Such a
        # session's baseline is what its own process served, known only once the router listed
        # that process (`_catalog_exact`); an HTTP or SSE backend is one server for every session,
        # whose catalog is exactly what each of them serves. The 2026-07-28 era keeps comparing
        # the backend's catalog: it has no handshake after which the router could list a process
        # of its own, and announcing every kind at every restart would tell its listen streams of
        # changes that did not happen.
        self._own_process = backend.config.kind == "stdio" and era == "handshake"
        self._catalog_exact = False
        self._unchecked: tuple[dict[str, list[JSON]] | None] | None = None  # a new process's lists, not yet compared
        self._had_channel = False
        self.closed = False
        self.end_reason: str | None = None
        self.rebuilds = 0
        self.last_activity = time.time()
        self._connect_lock = asyncio.Lock()
        self._rebuild_task: asyncio.Task[None] | None = None
        self._draining: dict[Channel, asyncio.Event] = {}
        self._channels: set[Channel] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        # Backend ids of requests the client cancelled (and of listens the backend ended): an answer
        # may still come (the spec asks the backend not to send one, and the sender to ignore one
        # that arrives anyway), and progress may too. The value: whether the router said so already
        # (once per request).
        self._cancelled: collections.OrderedDict[RequestId, bool] = collections.OrderedDict()

    # ------------------------------------------------------------------ describing
    @property
    def mode(self) -> ChannelMode:
        return self.era

    @property
    def client_name(self) -> str | None:
        if self.client_info:
            name = self.client_info.get("name")
            version = self.client_info.get("version")
            if name:
                return f"{name} {version}" if version else str(name)
        return None

    @property
    def idle(self) -> bool:
        """Nothing in flight and no stream open: closing it now loses the client nothing it waits for."""
        if self.pending or self.outbox.readers or self.closed:
            return False
        return not any(ps.attached for ps in self.post_streams.values())

    @property
    def state(self) -> Literal["connected", "held", "idle"]:
        """In one word, as the TUI and `mcp-router sessions` show it: its backend side is there
        (connected); or it is not and the client waits, or would, for the backend (held); or
        nothing waits for it, as a parked session (idle: rebuilt at its next request)."""
        if self.channel is not None and self.channel.alive:
            return "connected"
        if self.pending or not self.backend.accepting:
            return "held"
        return "idle"

    def parkable(self) -> bool:
        """Nobody is using it: a swap leaves its backend side to be rebuilt when its client is back.

        A handshake-era session with nothing in flight, no stream open and no resource subscribed,
        idle for --park-after: most often a client that went without DELETE (a health check such
        as `claude mcp list`, a bridge's probe). Moving it at every restart would start, on a stdio
        backend, a process of the user's server for each; its next request or stream rebuilds it.
        """
        after = self.router.park_after
        return (
            after >= 0
            and self.era == "handshake"
            and not self.shared
            and not self.subscriptions
            and self.idle
            and time.time() - self.last_activity >= after
        )

    def snapshot(self) -> JSON:
        return {
            "id": self.id,
            "backend": self.backend.name,
            "era": self.era,
            "transport": self.client_transport,
            "client": self.client_info,
            "protocol_version": self.protocol_version,
            "connected": self.channel is not None and self.channel.alive,
            "state": self.state,
            "pending": len(self.pending),
            "open_streams": self.outbox.readers + sum(1 for ps in self.post_streams.values() if ps.attached),
            "rebuilds": self.rebuilds,
            "created": self.created,
            "last_activity": self.last_activity,
        }

    def _publish_traffic(
        self,
        direction: Any,
        msg: Message,
        latency: float | None = None,
        method: str | None = None,
        resent: bool = False,
    ) -> None:
        bus = self.router.bus
        if not bus.wants(TrafficEvent):
            return
        d = msg.data
        view = msg.view
        if "method" in d:
            kind: Any = "request" if "id" in d else "notification"
        else:
            kind = "error" if "error" in d else "response"
        err = d.get("error")
        fault: Literal["backend"] | None = "backend" if err is not None and jsonrpc.is_backend_fault(msg) else None
        if fault and direction == "backend->client":
            direction = "router->client"  # the router answered, on the backend's account
        bus.publish(
            TrafficEvent(
                direction=direction,
                session=self.id,
                backend=self.backend.name,
                msg_kind=kind,
                method=method or msg.method,
                msg_id=msg.id,
                latency_ms=None if latency is None else round(latency * 1000, 3),
                error=err.get("message") if isinstance(err, dict) else None,
                message=view,
                raw=msg.raw,
                exact=msg.exact,
                fault=fault,
                era=self.era,
                resent=resent,
            )
        )

    def _publish_session(self, action: Any, reason: str | None = None) -> None:
        self.router.bus.publish(
            SessionEvent(
                action=action,
                session=self.id,
                backend=self.backend.name,
                transport=self.client_transport,
                era=self.era,
                client=self.client_name,
                protocol_version=self.protocol_version,
                reason=reason,
            )
        )

    def open_post_stream(self, sink: Sink, waiting: set[RequestId]) -> PostStream:
        ps = PostStream(next(self._stream_numbers), sink, waiting)
        self.post_streams[ps.number] = ps
        if len(self.post_streams) > 64:
            for number, old in list(self.post_streams.items()):
                if old.done and not old.attached:
                    del self.post_streams[number]
                if len(self.post_streams) <= 64:
                    break
        return ps

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Adopt a task that must outlive the HTTP request that started it (ended with the session)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ from the client
    async def client_request(self, msg: Message, sink: Sink | None, headers: Mapping[str, str] | None = None) -> None:
        p = self._admit(msg, sink, headers)
        if p is not None:
            await self._forward(p)

    def send_now(self, msg: Message, sink: Sink, headers: Mapping[str, str] | None, meta: object) -> bool:
        """The hot path: forward a plain modern-era request at once, its answer to `sink` without a task.

        Only when nothing can make it wait or need the full path: the channel is up and can send on
        a kept-alive connection, and the method is one the session keeps no state for. False means
        nothing happened (use `client_request`); True that the request is in flight like any other.
        `msg` is a request; `meta` what its params hold as `_meta` (`jsonrpc.msg_meta`).
        """
        ch = self.channel
        method = msg.data["method"]
        if self.closed or not self.shared or method in STATEFUL_METHODS or ch is None or not self.backend.accepting:
            return False
        if isinstance(ch, StdioChannel):
            return self._send_now_stdio(ch, msg, sink, headers)
        if not isinstance(ch, StreamableHTTPChannel) or not ch.alive:
            return False
        conn = ch.http.take_idle_at(ch.origin)  # (a kept-alive connection; `ch.alive` is checked above)
        if conn is None:
            return False
        client_id = msg.id
        p: Pending | None = None
        if client_id is not None and client_id not in self.pending:
            token = meta.get("progressToken") if type(meta) is dict else None
            if type(token) is not int and type(token) is not str:  # (`jsonrpc.progress_token`: none)
                # Sent first: the client's wait then does not include the bookkeeping below, and
                # its answer cannot come before this returns to the loop.
                ch.send_now(conn, msg, headers)
                # What `_admit` does for such a request (its id kept, nothing to rename, nothing the
                # session keeps), without the steps every other kind of request needs.
                self.last_activity = time.time()
                p = Pending(client_id, client_id, method, msg, sink, headers)
                p.sent_on = p.channel = ch
                self.pending[client_id] = p
        if p is None:
            p = self._admit(msg, sink, headers, keep_id=True, shown=False)
            if p is None:
                ch.http.put_idle(conn)
                return True  # answered already (into the sink)
            p.sent_on = p.channel = ch
            ch.send_now(conn, p.msg, p.headers)
        # After the send (its answer cannot come before). Sent, it is this path's whatever happens:
        # a failure here must not send it again by the full path.
        if self.router.bus.wants(TrafficEvent):
            self._show_sent(msg)
        return True

    def _show_sent(self, msg: Message) -> None:
        """The traffic event of a request `send_now` sent: it is this path's whatever happens now,
        so a failure to build the event must not send it again by the full path."""
        try:
            self._publish_traffic("client->backend", msg)
        except Exception as exc:  # a bug in building the event: the call itself is fine
            self.router.log(self.backend.name, f"could not show a request in the trace: {exc!r}")

    def _send_now_stdio(self, ch: StdioChannel, msg: Message, sink: Sink, headers: Mapping[str, str] | None) -> bool:
        """`send_now` to a process: the line written to its pipe from this callback, the answer
        delivered from its stdout's. The id is the session's own: every client shares the one pipe,
        so a late answer to a cancelled request must never meet another client's equal id."""
        if not ch.can_send_now():
            return False
        p = self._admit(msg, sink, headers, shown=False)
        if p is None:
            return True  # answered already (into the sink)
        p.sent_on = p.channel = ch
        ch.send_now(p.msg)
        if self.router.bus.wants(TrafficEvent):
            self._show_sent(msg)
        return True

    def _admit(
        self,
        msg: Message,
        sink: Sink | None,
        headers: Mapping[str, str] | None,
        keep_id: bool = False,
        shown: bool = True,
    ) -> Pending | None:
        """Take a client's request in: its Pending, registered and shown; None if it was answered here.

        `keep_id`: on a shared session, send the client's own id (its bytes untouched) when no
        request in flight has it and it carries no progress token. Only where each request has
        its own answer channel (an HTTP exchange), so equal ids of two clients never meet there.
        `shown=False`: the caller publishes the request's event (once it is sent) unless this
        answers it here (then it is published here, before the answer).
        """
        self.last_activity = time.time()
        method = msg.method or ""
        client_id = msg.id
        assert client_id is not None
        if self.closed:
            self._answer_local(
                msg,
                sink,
                jsonrpc.error(client_id, jsonrpc.INVALID_REQUEST, f"session ended: {self.end_reason}"),
            )
            return None
        token = jsonrpc.progress_token(msg)
        client_raw_id = client_raw_token = None
        renamed = self.shared and not (keep_id and token is None and client_id not in self.pending)
        if renamed:
            backend_id: RequestId = f"{self.id}-{next(self._backend_ids)}"
            while backend_id in self.pending:  # a client's own id may look like ours
                backend_id = f"{self.id}-{next(self._backend_ids)}"
            out, client_raw_id = msg.swap(("id",), backend_id)
            if token is not None:
                # Clients pick their tokens alone (the SDK uses the request id): on a shared
                # backend session they are made unique, like the ids, and given back on the way out.
                out, client_raw_token = out.swap(PROGRESS_TOKEN_PATH, backend_id)
        else:
            backend_id, out = client_id, msg
            if backend_id in self.pending:
                self._answer_local(
                    msg,
                    sink,
                    jsonrpc.error(client_id, jsonrpc.INVALID_REQUEST, f"request id {client_id!r} is already in use"),
                )
                return None
        p = Pending(
            client_id,
            backend_id,
            method,
            out,
            sink,
            headers,
            token=backend_id if renamed and token is not None else token,
            client_raw_id=client_raw_id,
            client_token=token,
            client_raw_token=client_raw_token,
            renamed=renamed,
        )
        p.listen = method == "subscriptions/listen"
        if shown or self.closed or method in STATEFUL_METHODS or (method == "ping" and not self._ready()):
            self._publish_traffic("client->backend", msg)
        if method == "ping" and not self._ready():
            # The client's liveness check is about the router; answer it while the backend is away.
            self._answer_local(msg, sink, jsonrpc.result(client_id, {}), publish=True)
            return None
        if method == "initialize":
            if self.init_result is not None:
                self._answer_local(
                    msg,
                    sink,
                    jsonrpc.error(client_id, jsonrpc.INVALID_REQUEST, "session is already initialized"),
                    publish=True,
                )
                return None
            self.init_msg = msg
            info = msg.params.get("clientInfo")
            self.client_info = info if isinstance(info, dict) else None
        elif method == "logging/setLevel":
            level = msg.params.get("level")
            self.log_level = level if isinstance(level, str) else self.log_level
        elif method == "resources/subscribe":
            uri = msg.params.get("uri")
            if isinstance(uri, str):
                self.subscriptions.add(uri)
        elif method == "resources/unsubscribe":
            self.subscriptions.discard(str(msg.params.get("uri")))
        self.pending[backend_id] = p
        if p.token is not None:
            self._by_token[p.token] = p
        return p

    def _ready(self) -> bool:
        ch = self.channel
        return ch is not None and ch.alive and self.backend.accepting

    async def _forward(self, p: Pending, deadline: float | None = None, resent: bool = False) -> None:
        if deadline is None:
            deadline = time.monotonic() + self.router.hold
        while True:
            try:
                ch = await self._ready_channel(deadline)
            except HoldExpired as exc:
                self._fail(p, jsonrpc.BACKEND_UNAVAILABLE, str(exc))
                return
            except SessionEnded as exc:
                self._fail(p, jsonrpc.INVALID_REQUEST, f"session ended: {exc}")
                return
            if self.pending.get(p.backend_id) is not p:
                return  # answered or cancelled while it waited
            if p.listen and p.channel is not None:
                return  # re-opened by the channel's install while it waited: one stream per listen
            if resent:
                # Shown before it goes: a JSON answer is delivered before the send returns.
                resent = False
                shown = p.msg.with_value(("id",), p.client_id, p.client_raw_id) if p.renamed else p.msg
                self._publish_traffic("router->backend", shown, method=p.method, resent=True)
            if await self._send_pending(ch, p):
                return

    def _resendable(self, p: Pending) -> bool:
        if not self.router.resend or p.listen:
            return False
        if p.method in RESENDABLE:
            return True
        if p.method != "tools/call":
            return False
        name = p.msg.params.get("name")
        for tool in (self.backend.catalog or {}).get("tools", []):
            if tool.get("name") == name:
                hints = tool.get("annotations")
                return isinstance(hints, dict) and (
                    hints.get("readOnlyHint") is True or hints.get("idempotentHint") is True
                )
        return False

    def _hold_for_resend(self, p: Pending) -> bool:
        """Its backend died with `p` in flight: hold it for the next backend if it is safe to send twice."""
        if self.closed or self.pending.get(p.backend_id) is not p or not self._resendable(p):
            return False
        now = time.monotonic()
        if p.resend_deadline is None:
            p.resend_deadline = now + self.router.hold
        elif now >= p.resend_deadline:
            return False
        p.channel = None
        self._spawn(self._forward(p, p.resend_deadline, resent=True))
        return True

    async def _ready_channel(self, deadline: float) -> Channel:
        attempt = 0
        while True:
            if self.closed:
                raise SessionEnded(self.end_reason or "closed")
            ch = self.channel
            if ch is not None and ch.alive and self.backend.accepting:
                return ch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HoldExpired(self.backend.down_message(self.router.hold))
            if not self.backend.accepting:
                await self.backend.wait_up(remaining)
                continue
            async with self._connect_lock:
                # Looked at again under the lock: a disable that ran while this waited for it has
                # already let go of the session's channels, and a process started now would be
                # left running under a disabled backend.
                if self.closed or not self.backend.accepting or (self.channel is not None and self.channel.alive):
                    continue
                try:
                    opened, served = await asyncio.wait_for(self._open_and_replay(), max(remaining, 0.01))
                except SessionEnded:
                    raise
                except (BackendUnavailable, RouterCallError, TimeoutError, OSError) as exc:
                    self.backend.report_failure(f"session {self.id[:8]}: {exc or type(exc).__name__}")
                    attempt += 1
                    # A backend that is "up" but refuses this session must not be retried in a hot loop.
                    await asyncio.sleep(min(0.05 * 2**attempt, 1.0, max(deadline - time.monotonic(), 0)))
                    continue
                await self._install(opened, served)
                return opened

    async def _open_and_replay(self) -> tuple[Channel, dict[str, list[JSON]] | None]:
        """A new channel, its handshake replayed; with, for a process of the session's own, its lists."""
        ch = self.backend.new_channel(self, self.mode)
        self._channels.add(ch)
        served = None
        try:
            await ch.open()
            if self.era == "handshake" and self.init_result is not None and self.init_msg is not None:
                caps = await self._replay_handshake(ch)
                if self._own_process:
                    served = await self._list_served(ch, caps)
        except BaseException:
            self._channels.discard(ch)
            await ch.close()
            raise
        return ch, served

    async def _list_served(self, ch: Channel, caps: JSON) -> dict[str, list[JSON]] | None:
        """The lists a process of the session's own serves; None if it would not say."""
        try:
            return await list_catalog(self.calls, ch, caps)
        except (RouterCallError, BackendUnavailable):
            return None

    async def _replay_handshake(self, ch: Channel) -> JSON:
        """Initialize the new channel as the client did; return the capabilities it declares."""
        assert self.init_msg is not None and self.init_result is not None
        res = await self.calls.call(ch, "initialize", dict(self.init_msg.params), timeout=10.0)
        version = res.get("protocolVersion")
        if version != self.protocol_version:
            self._end_later(
                f"backend '{self.backend.name}' now negotiates protocol {version}, the session has {self.protocol_version}"
            )
            raise SessionEnded("protocol version changed")
        old_caps = self.init_result.get("capabilities") or {}
        new_caps = res.get("capabilities") or {}
        dropped = [c for c in KEPT_CAPABILITIES if c in old_caps and c not in new_caps]
        if dropped:
            self._end_later(f"backend '{self.backend.name}' no longer offers {', '.join(dropped)}")
            raise SessionEnded("capability dropped")
        ch.protocol_version = version
        await ch.send(jsonrpc.notification("notifications/initialized"))
        if self.log_level:
            await self.calls.call(ch, "logging/setLevel", {"level": self.log_level})
        for uri in sorted(self.subscriptions):
            await self.calls.call(ch, "resources/subscribe", {"uri": uri})
        if isinstance(ch, StreamableHTTPChannel):
            ch.start_get_stream()
        return new_caps if isinstance(new_caps, dict) else {}

    async def _install(self, ch: Channel, served: dict[str, list[JSON]] | None = None) -> None:
        rebuilt = self._had_channel
        self._had_channel = True
        self.channel = ch
        if self.era == "modern":
            for p in list(self.pending.values()):
                if p.listen and p.channel is None and p.sent_on is not None:
                    # The client's listen stream stays open; the new backend serves it from now on.
                    # Only a listen an earlier channel served: one never sent yet is sent by its
                    # own `_forward` (sent here too, the backend would open two streams for it,
                    # and the router would cancel only one when the client closes its stream).
                    p.sent_on = ch
                    try:
                        await ch.send(p.msg, p.headers)
                        p.channel = ch
                    except BackendUnavailable:
                        return
        if rebuilt:
            self.rebuilds += 1
            self._publish_session("rebuilt")
        if not self._own_process:
            self.check_catalog()
        elif rebuilt:
            self._check_served(served)

    async def client_notification(self, msg: Message, headers: Mapping[str, str] | None = None) -> None:
        self.last_activity = time.time()
        method = msg.method
        out = msg
        if method == "notifications/cancelled" and not self.shared:
            rid = msg.params.get("requestId")
            p = self.pending.pop(rid, None) if isinstance(rid, str | int) else None
            if p is not None:
                self._note_cancelled(p)
                if p.token is not None:
                    self._by_token.pop(p.token, None)
        self._publish_traffic("client->backend", msg)
        ch = self.channel
        if ch is None or not ch.alive:
            return  # nothing to tell a backend that is away; the rebuild replays what matters
        try:
            await ch.send(out, headers)
        except BackendUnavailable:
            return
        if method == "notifications/initialized" and isinstance(ch, StreamableHTTPChannel):
            ch.start_get_stream()

    async def client_response(self, msg: Message) -> None:
        """The client answers a request the backend sent it (sampling, elicitation, roots)."""
        self.last_activity = time.time()
        rid = msg.id
        entry = self.server_requests.pop(rid, None) if isinstance(rid, int) else None
        if entry is None:
            self.router.log(self.backend.name, f"session {self.id[:8]}: dropped a reply to unknown request id {rid!r}")
            return
        ch, original_id, raw_id, method = entry
        self._publish_traffic("client->backend", msg, method=method)
        if not ch.alive:
            return  # the backend that asked is gone; its successor never asked
        try:
            await ch.send(msg.with_value(("id",), original_id, raw_id))
        except BackendUnavailable:
            return

    def client_gone(self, p: Pending) -> None:
        """A modern-era client closed its response stream: that cancels the request upstream."""
        if self.pending.get(p.backend_id) is not p:
            return
        self._pop(p)
        self._note_cancelled(p)
        if p.channel is not None:
            p.channel.cancel(p.backend_id)
        self._publish_traffic(
            "client->backend", jsonrpc.notification("notifications/cancelled", {"requestId": p.client_id})
        )

    def abandon(self, requests: list[Pending], why: str) -> None:
        """The client can no longer take these requests' answers: cancel them upstream, say so."""
        self.router.log(self.backend.name, f"session {self.id[:8]}: {why}; cancelled {len(requests)} request(s)")
        for p in requests:
            if self.era == "modern":
                self.client_gone(p)  # closing the stream is the cancellation
                continue
            if self.pending.get(p.backend_id) is not p:
                continue
            self._pop(p)
            self._note_cancelled(p)
            note = jsonrpc.notification("notifications/cancelled", {"requestId": p.backend_id, "reason": why})
            self._publish_traffic("router->backend", note)
            ch = p.channel
            if ch is not None and ch.alive:
                task = self._spawn(ch.send(note))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def _for_cancelled(self, subscription: object, related: RequestId | None) -> bool:
        """Whether a backend notification is for a subscription (or request) that was cancelled."""
        owner = subscription if isinstance(subscription, str | int) else related
        return owner is not None and owner not in self.pending and owner in self._cancelled

    def _unaddressed_progress(self, token: object) -> None:
        """Say why modern-era progress whose token no request in flight has went nowhere."""
        # A modern-era token is its request's backend id (a shared session renames both alike).
        if isinstance(token, str | int) and self._for_cancelled(None, token):
            # The backend went on a moment after the client gave the call up: nothing is lost,
            # so once per request is enough.
            if not self._cancelled[token]:
                self._cancelled[token] = True
                self.router.log(
                    self.backend.name,
                    f"session {self.id[:8]}: ignored progress the backend still sent for cancelled request {token!r}",
                )
            return
        self.router.log(
            self.backend.name,
            f"session {self.id[:8]}: dropped notifications/progress for token {token!r}: no request in flight has it",
        )

    def _note_cancelled(self, p: Pending) -> None:
        self._cancelled[p.backend_id] = False
        if len(self._cancelled) > 256:
            self._cancelled.popitem(last=False)

    # ------------------------------------------------------------------ from the backend
    def on_backend_message(self, channel: Channel, msg: Message, related: RequestId | None, status: int | None) -> None:
        self.backend.last_heard = time.perf_counter()
        if (self.calls.waiting and self.calls.take(msg)) or self.closed:
            return
        data = msg.data
        if "method" not in data:
            self._backend_response(channel, msg, status)
            return
        if "id" in data:
            rid = next(self._server_ids)
            out, raw_id = msg.swap(("id",), rid)
            self.server_requests[rid] = (channel, data["id"], raw_id, msg.method or "")
            self._publish_traffic("backend->client", out)
            self._deliver(out, self.pending.get(related) if related is not None else None)
            return
        self._backend_notification(channel, msg, related)

    def _backend_response(self, channel: Channel, msg: Message, status: int | None) -> None:
        p = self.pending.get(msg.id) if msg.id is not None else None
        if p is None:
            if msg.id is not None and msg.id in self._cancelled:
                del self._cancelled[msg.id]
                self.router.log(
                    self.backend.name,
                    f"session {self.id[:8]}: ignored the backend's answer to cancelled request {msg.id!r}",
                )
                return
            self.router.log(self.backend.name, f"session {self.id[:8]}: dropped a late answer for id {msg.id!r}")
            return
        if p.listen and msg.is_error and msg.data["error"].get("code") == jsonrpc.BACKEND_LOST and not self.closed:
            # The backend's half of a listen stream broke; the client's half stays open and is
            # served again by whichever backend comes back.
            p.channel = None
            self.backend.report_failure(str(msg.data["error"].get("message")))
            self._spawn(self._relisten(p))
            return
        if status is None and msg.is_error and msg.data["error"].get("code") == jsonrpc.BACKEND_LOST:
            # The connection broke with the request in flight (the router's own error, not the backend's).
            if p.resend_deadline is not None and channel is not p.sent_on:
                return  # the dead backend's connection, reporting again: the request is re-sent already
            if self._hold_for_resend(p):
                self.backend.report_failure(str(msg.data["error"].get("message")))
                return
        self._pop(p)
        out = msg.with_value(("id",), p.client_id, p.client_raw_id) if p.renamed else msg
        if p.method == "initialize" and not msg.is_error:
            out = self._initialized(channel, out)
        latency = time.perf_counter() - p.started
        # The client first: the event is for views, which poll anyway.
        sink = p.sink
        if sink is not None and not sink.closed:
            sink.put(out, status)  # (`_deliver`'s first case, without its frame: every answer)
        else:
            self._deliver(out, p, status)
        if self.router.bus.wants(TrafficEvent):
            self._publish_traffic("backend->client", out, latency, p.method)

    def _backend_notification(self, channel: Channel, msg: Message, related: RequestId | None) -> None:
        p = self.pending.get(related) if related is not None else None
        out = msg
        params = msg.params
        method = msg.method
        if self._own_process and method in LIST_CHANGED_METHODS:
            self._catalog_exact = False  # the process changed its lists: the ones the router took are stale
        meta = params.get("_meta")
        subscription = (
            meta.get(jsonrpc.META_SUBSCRIPTION_ID) if self.era == "modern" and isinstance(meta, dict) else None
        )
        if subscription is not None:
            # It names the listen it is for: that listen's stream or none, never a request that
            # happens to be in flight (on stdio, another client's).
            q = self.pending.get(subscription) if isinstance(subscription, str | int) else None
            p = q if q is not None and q.listen else p if p is not None and p.listen else None
        if p is None and self.era == "modern" and self._for_cancelled(subscription, related):
            # Sent before the backend saw the client close that stream (a listen the client
            # ended, a call it gave up), or by a backend that ignores the cancellation: the
            # client asked to stop, so nothing is lost.
            return
        if method == "notifications/progress":
            tok = params.get("progressToken")
            q = self._by_token.get(tok) if isinstance(tok, str | int) else None
            if q is None and self.era == "modern":
                # Its token is its address, and no request in flight has it: nobody's, never one
                # that happens to be in flight (on stdio, maybe another client's call).
                self._unaddressed_progress(tok)
                return
            if q is not None:
                p = q
                if self.shared and q.client_token is not None:
                    out = msg.with_value(("params", "progressToken"), q.client_token, q.client_raw_token)
        elif method == "notifications/cancelled":
            # The backend withdraws a request it sent the client: name it by the id the client saw.
            orig = params.get("requestId")
            for rid, (ch, oid, _raw, _m) in list(self.server_requests.items()):
                if ch is channel and oid == orig:
                    del self.server_requests[rid]
                    out = msg.with_value(("params", "requestId"), rid)
                    break
            else:
                if self.era == "modern" and isinstance(orig, str | int):
                    q = self.pending.get(orig)
                    if q is not None and q.listen and q.channel is channel:
                        self._listen_ended(q, msg)
                        return
                    if self._for_cancelled(orig, None):
                        return  # it names a listen (or call) that is over already: nothing to end
        if (
            p is None
            and self.era == "modern"
            and related is None
            and subscription is None
            and method != "notifications/cancelled"
        ):
            # A stdio backend cannot say which request a log line belongs to, and in the modern era
            # there is no other stream. With one request in flight on its process it is that
            # request's; with several (other clients' among them) nobody's: never another client's.
            candidates = [q for q in self.pending.values() if q.channel is channel and not q.listen]
            if method == "notifications/message" and len(candidates) > 1:
                # A modern-era server logs only for requests that asked, at their level or above.
                level = params.get("level")
                candidates = [q for q in candidates if _asked_for_log(q.msg, level)]
            if len(candidates) == 1:
                p = candidates[0]
            elif candidates:
                self.router.log(
                    self.backend.name,
                    f"{method} from the backend names no request and {len(candidates)} are in flight "
                    "on its process (several clients): not delivered",
                )
                return
        if subscription is not None and p is not None:
            if method == "notifications/subscriptions/acknowledged":
                if p.acknowledged:
                    return  # a re-opened stream acknowledges again; the client has its ack
                p.acknowledged = True
            if p.renamed:
                out = out.with_value(("params", "_meta", jsonrpc.META_SUBSCRIPTION_ID), p.client_id, p.client_raw_id)
        self._publish_traffic("backend->client", out)
        self._deliver(out, p)

    def _listen_ended(self, p: Pending, msg: Message) -> None:
        """The backend ended a listen by cancelling it (how a stdio server does): so does the client's stream.

        A client over HTTP learns that a listen ended abruptly by its stream closing without an
        answer (the SDK: the subscription is lost, re-listen and refetch).
        """
        self._pop(p)
        # Its late messages, if any, are for a listen that is over: nothing is lost.
        self._note_cancelled(p)
        out = msg.with_value(("params", "requestId"), p.client_id, p.client_raw_id) if p.renamed else msg
        self._publish_traffic("backend->client", out)
        if p.sink is not None:
            p.sink.put(jsonrpc.notification("$closed"))

    async def _relisten(self, p: Pending) -> None:
        while self.pending.get(p.backend_id) is p and p.channel is None:
            try:
                ch = await self._ready_channel(float("inf"))
            except (SessionEnded, HoldExpired):
                return
            if p.channel is not None or self.pending.get(p.backend_id) is not p:
                return  # re-opened by the channel rebuild
            if await self._send_pending(ch, p):
                return

    async def _send_pending(self, ch: Channel, p: Pending) -> bool:
        """Send a pending request; False if nothing reached the backend (hold it and try again)."""
        p.sent_on = ch
        try:
            await ch.send(p.msg, p.headers)
        except BackendUnavailable as exc:
            self.backend.report_failure(str(exc))
            return False
        if self.pending.get(p.backend_id) is p:
            p.channel = ch
            if not ch.alive and not p.listen:
                # Closed while it was being sent (retired past its drain, or lost): its answer
                # stream went with it, and `on_channel_lost` ran before it was on it.
                if not self._hold_for_resend(p):
                    self._fail(
                        p,
                        jsonrpc.BACKEND_LOST,
                        f"backend '{self.backend.name}' connection closed while sending {p.method}",
                    )
        return True

    def _initialized(self, channel: Channel, msg: Message) -> Message:
        res = msg.data.get("result")
        if not isinstance(res, dict):
            return msg
        version = res.get("protocolVersion")
        self.protocol_version = version if isinstance(version, str) else None
        channel.protocol_version = self.protocol_version
        self.init_result = res
        self.catalog = self.backend.catalog
        self._publish_session("initialized")
        caps = res.get("capabilities")
        if not isinstance(caps, dict):
            return msg
        # Declare listChanged where the backend has the feature: the router will tell the client
        # when a swapped backend changed the list, and many clients only listen when declared.
        # Only that token is spliced in; the rest of the answer stays as the backend wrote it.
        for kind in ("tools", "resources", "prompts"):
            cap = caps.get(kind)
            if isinstance(cap, dict) and cap.get("listChanged") is not True:
                msg = msg.with_value(("result", "capabilities", kind, "listChanged"), True)
        return msg

    def on_channel_lost(self, channel: Channel, reason: str) -> None:
        self._channels.discard(channel)
        self.calls.fail_on(channel, reason)
        draining = self._draining.pop(channel, None)
        if draining is not None:
            draining.set()
        for p in list(self.pending.values()):
            if p.channel is not channel:
                continue
            if p.listen and self.era == "modern":
                p.channel = None  # re-opened on the next channel: the client's stream stays
                continue
            if self._hold_for_resend(p):
                continue
            self._fail(
                p,
                jsonrpc.BACKEND_LOST,
                f"backend '{self.backend.name}' went down while handling {p.method}: {reason}",
            )
        for rid, (ch, _oid, _raw, _m) in list(self.server_requests.items()):
            if ch is channel:
                del self.server_requests[rid]
                note = jsonrpc.notification(
                    "notifications/cancelled", {"requestId": rid, "reason": f"backend went down: {reason}"}
                )
                self._publish_traffic("router->client", note)
                self._deliver(note, None)
        if channel is not self.channel:
            return
        self.channel = None
        self.backend.report_failure(reason, channel)
        self._schedule_rebuild()

    def on_backend_log(self, channel: Channel, line: str, garbage: bool = False) -> None:
        self.backend.log(line, channel, garbage=garbage)

    # ------------------------------------------------------------------ delivery
    def _deliver(self, msg: Message, p: Pending | None, status: int | None = None) -> None:
        if p is not None and p.sink is not None and not p.sink.closed:
            p.sink.put(msg, status)
            return
        if self.era == "modern":
            self.router.log(self.backend.name, f"no open stream for {msg.method or 'a response'}; dropped")
            return
        if self.client_transport == "streamable-http" and self.outbox.readers == 0:
            # No standalone stream open: an open POST stream is the only way to reach the client now.
            for q in reversed(self.pending.values()):
                if q.sink is not None and not q.sink.closed:
                    q.sink.put(msg, None)
                    return
        self.outbox.put(msg)

    def _answer_local(self, req: Message, sink: Sink | None, answer: Message, publish: bool = False) -> None:
        if publish:
            self._publish_traffic("router->client", answer, method=req.method)
        if sink is not None:
            sink.put(answer, None)
        else:
            self.outbox.put(answer)

    def _fail(self, p: Pending, code: int, text: str) -> None:
        if self.pending.get(p.backend_id) is not p:
            return
        self._pop(p)
        err = jsonrpc.error(p.client_id, code, text, {"backend": self.backend.name, "state": self.backend.state})
        self._publish_traffic("router->client", err, time.perf_counter() - p.started, p.method)
        self._deliver(err, p)

    def _pop(self, p: Pending) -> None:
        self.pending.pop(p.backend_id, None)
        # Idle time counts from the last answer, not the last request: a slow call is not idleness.
        self.last_activity = time.time()
        if p.token is not None:
            self._by_token.pop(p.token, None)
        ch = p.channel or p.sent_on  # (an answer may come within the send itself: a JSON reply)
        if ch is not None and ch in self._draining and not any(_awaits(q, ch) for q in self.pending.values()):
            self._draining[ch].set()

    # ------------------------------------------------------------------ lifecycle
    def _schedule_rebuild(self) -> None:
        established = self.init_result is not None or any(p.listen for p in self.pending.values())
        if self.closed or not established or (self._rebuild_task and not self._rebuild_task.done()):
            return
        if self.parkable():
            self._note_parked()
            return
        self._rebuild_task = self._spawn(self._rebuild())

    def wake(self) -> None:
        """Its client opened a stream: a parked session gets its backend side back now."""
        if self.channel is None:
            self._schedule_rebuild()

    def _note_parked(self) -> None:
        idle = time.time() - self.last_activity
        why = f"idle {idle:.0f} s with no stream open: its backend side is rebuilt when its client is back"
        self.backend.log(f"session {self.id[:8]} parked, {why}")
        self._publish_session("parked", why)

    async def _rebuild(self) -> None:
        try:
            await self._ready_channel(float("inf"))
        except (SessionEnded, HoldExpired):
            return

    def check_catalog(self) -> None:
        """Tell the client what changed in the backend's lists since it last looked."""
        if self._own_process:
            # The backend's catalog is its main process's, not necessarily what this session's
            # own process serves: `_install` compares what that process served (`_check_served`),
            # or leaves it here for when the backend accepts again.
            if self._unchecked is not None:
                self._check_served(self._unchecked[0])
            return
        new = self.backend.catalog
        if new is None:
            return
        if self.catalog is None:
            # Nothing seen yet to compare with: this is the baseline, once the session has one.
            if self.init_result is not None or self.era == "modern":
                self.catalog = new
            return
        if not self._ready():
            return  # the rebuild checks again once the session is connected
        changes = catalog_changes(self.catalog, new)
        self.catalog = new
        self._announce(changes)

    def _check_served(self, served: dict[str, list[JSON]] | None) -> None:
        """A new process of the session's own serves it: tell the client what changed in its lists.

        `served`: the new process's lists (None: it would not say in time).
        """
        if not self._ready():
            self._unchecked = (served,)  # once the backend accepts again (`check_catalog`)
            return
        self._unchecked = None
        if served is not None and self._catalog_exact and self.catalog is not None:
            changes = catalog_changes(self.catalog, served)
        else:
            # What the client was told is not known for sure (the session's previous process was
            # never listed, or changed its lists itself since): it looks again at every kind the
            # session serves. A needless list_changed costs it one list; a missing one, a stale list.
            declared = served if served is not None else self._declared()
            changes = [kind for kind in LIST_CHANGED if kind in declared]
        if served is not None:
            self.catalog = served
        self._catalog_exact = served is not None
        self._announce(changes)

    def _declared(self) -> JSON:
        caps = (self.init_result or {}).get("capabilities")
        return caps if isinstance(caps, dict) else {}

    def _announce(self, changes: list[str]) -> None:
        for kind in changes:
            if self.era == "handshake":
                note = jsonrpc.notification(LIST_CHANGED[kind])
                self._publish_traffic("router->client", note)
                self._deliver(note, None)
                continue
            for p in self.pending.values():
                wanted = p.msg.params.get("notifications")
                if p.listen and isinstance(wanted, dict) and wanted.get(LISTEN_FILTER_KEYS[kind]) is True:
                    note = jsonrpc.notification(
                        LIST_CHANGED[kind], {"_meta": {jsonrpc.META_SUBSCRIPTION_ID: p.client_id}}
                    )
                    self._publish_traffic("router->client", note)
                    self._deliver(note, p)

    async def migrate(self) -> bool:
        """Blue/green: move the session to a fresh backend channel, then retire the old one."""
        async with self._connect_lock:
            old = self.channel
            if old is None or self.closed:
                return False
            if self.parkable() and await self._park(old):
                return True
            listing: asyncio.Task[dict[str, list[JSON]] | None] | None = None
            if self._own_process and self.era == "handshake" and self.init_result is not None:
                # What the old process serves is the baseline the new one is compared with, and it
                # is still up: list it while the new one starts.
                listing = self._spawn(self._list_served(old, self._declared()))
            try:
                new, served = await self._open_and_replay()
            except (BackendUnavailable, RouterCallError, TimeoutError, OSError, SessionEnded) as exc:
                if listing is not None:
                    listing.cancel()
                self.backend.log(f"session {self.id[:8]} could not move to the new backend: {exc}")
                return False
            if listing is not None:
                if not listing.done():
                    # Not answered in the time a new process took to start (stuck, or at a
                    # breakpoint): not waited for; the client is told to look again instead.
                    listing.cancel()
                    self._catalog_exact = False
                elif not listing.cancelled() and listing.exception() is None and listing.result() is not None:
                    self.catalog = listing.result()
                    self._catalog_exact = True
            drained = asyncio.Event()
            self._draining[old] = drained
            for p in self.pending.values():
                if p.listen and p.channel is old:
                    p.channel = None  # re-opened on the new channel by _install
            # A request still being sent on the old channel counts too: retired under it, its answer
            # would never come (the old backend session ends, and its stream with it).
            if not any(_awaits(p, old) for p in self.pending.values()):
                drained.set()
            await self._install(new, served)
            self._spawn(self._retire(old, drained))
            return True

    async def _park(self, old: Channel) -> bool:
        """Let go of the backend side of a session nobody is using (`parkable`) instead of moving it.

        False, nothing changed, if its client came back meanwhile: the session is moved instead.
        """
        listed: dict[str, list[JSON]] | None = None
        if self._own_process and self.init_result is not None:
            # The baseline its next process is compared with when it is rebuilt, while the old one
            # is still there to ask (not waited for past the probe timeout: a stuck process).
            try:
                listed = await asyncio.wait_for(self._list_served(old, self._declared()), self.router.probe_timeout)
            except TimeoutError:
                listed = None
            if not self.parkable():
                return False  # a request went to the old process meanwhile: it is drained, not cut
            if listed is not None:
                self.catalog = listed
            self._catalog_exact = listed is not None
        self.channel = None
        self._channels.discard(old)
        self._note_parked()
        await old.close()
        return True

    async def _retire(self, old: Channel, drained: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(drained.wait(), 30.0)
        except TimeoutError:
            pass
        self._draining.pop(old, None)
        if any(p.channel is old for p in self.pending.values()):
            # Still unanswered after the drain: closing the channel ends their streams without a
            # word, so they are re-sent or failed now rather than left waiting for ever.
            self.on_channel_lost(old, "the backend's previous session was retired with it unanswered")
        self._channels.discard(old)
        await old.close()

    def _end_later(self, reason: str) -> None:
        self._spawn(self.end(reason))

    async def end(self, reason: str) -> None:
        """The router can no longer keep this session honestly: end it; the client re-initializes."""
        if self.closed:
            return
        self.end_reason = reason
        self._publish_session("ended", reason)
        await self.close(reason, event=False)

    async def release_channels(self, reason: str) -> None:
        """Let go of the backend side (its backend is being disabled); the client's session stays.

        What was in flight fails at once, as when a backend dies; the rest is held, and the session
        is rebuilt on the backend's next channel.
        """
        for ch in list(self._channels):
            ch.lost(reason)
            await ch.close()

    async def close(self, reason: str = "closed by client", event: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self.end_reason = self.end_reason or reason
        for p in list(self.pending.values()):
            self._fail(p, jsonrpc.INVALID_REQUEST, f"session ended: {self.end_reason}")
            if p.sink is not None:
                p.sink.put(jsonrpc.notification("$closed"))
        self.outbox.close()
        self.router.forget_session(self)
        if event:
            self._publish_session("closed", reason)
        current = asyncio.current_task()
        for t in list(self._tasks):
            if t is not current:
                t.cancel()
        channels = set(self._channels)
        if self.channel is not None:
            channels.add(self.channel)
        self.channel = None
        for ch in channels:
            await ch.close()
