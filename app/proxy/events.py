"""The core's event stream: every message, session and backend change, for any view to consume.

Publishing never blocks and never fails: each subscriber has a bounded queue and a slow subscriber
loses its oldest events (and is told how many), so a stalled view cannot slow the proxy down.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

# "router->backend" / "backend->router": the router's own requests (a replay, a call from the
# workbench) and their answers, on a session of the router's own.
Direction = Literal["client->backend", "backend->client", "router->client", "router->backend", "backend->router"]


@dataclass(slots=True)
class Event:
    ts: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def cost(self) -> int:
        """What holding this event costs, in bytes, estimated cheaply (never by serializing it)."""
        return EVENT_OVERHEAD

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = EVENT_TYPES.get(type(self), self.kind)
        return d


@dataclass(slots=True)
class TrafficEvent(Event):
    """One JSON-RPC message crossing the router."""

    direction: Direction
    session: str
    backend: str
    msg_kind: Literal["request", "notification", "response", "error"]
    method: str | None
    msg_id: str | int | None
    latency_ms: float | None = None
    error: str | None = None
    message: dict[str, Any] | None = None
    """The message decoded, for display and filtering (always JSON-encodable)."""
    raw: bytes | None = None
    """The exact bytes that crossed the router (what a detail view shows as "the JSON")."""
    exact: bool = True
    """False when `message` only approximates `raw` (values Python cannot hold: lone surrogates,
    integers past 64 bits, 1e400, nesting deeper than the router decodes)."""
    fault: Literal["backend"] | None = None
    """Set on an error the router answered because the backend misbehaved (not a router failure)."""
    era: str | None = None
    """The client session's era ("handshake" or "modern")."""
    resent: bool = False
    """Set on a request the router sent again to a new backend (its first died with it in flight)."""
    cut: int = 0
    """The message's size in bytes when it was over PREVIEW_OVER: `message` is then a preview of
    it (strings and entries past PREVIEW_CHARS cut, with a marker) and `raw` is not kept."""

    def __post_init__(self) -> None:
        raw = self.raw
        if raw is not None and len(raw) > PREVIEW_OVER:
            # Views keep events (the TUI thousands of rows, each /events subscriber up to its
            # bound): a 64 MiB answer's event would keep its bytes and its decoded text alive.
            self.cut = len(raw)
            self.raw = None
            self.exact = False
            self.message = preview(self.message)

    def cost(self) -> int:
        if self.cut:
            return EVENT_OVERHEAD + PREVIEW_CHARS
        return EVENT_OVERHEAD + (len(self.raw) if self.raw is not None else 0)

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in _TRAFFIC_FIELDS}
        d["type"] = "traffic"
        if isinstance(self.msg_id, int) and not -(2**63) <= self.msg_id < 2**64:
            d["msg_id"] = str(self.msg_id)  # an id past 64 bits: exact as text, which every encoder takes
        # The bytes travel only where the decoded message cannot stand for them.
        if not self.exact and self.raw is not None:
            d["raw"] = self.raw.decode("utf-8", "replace")
        if self.resent:
            d["resent"] = True
        if self.cut:
            d["cut"] = self.cut
        return d


# A traffic event for a message over PREVIEW_OVER bytes carries a preview of about PREVIEW_CHARS
# characters (what a view can show without "show all" anyway), not the message.
PREVIEW_OVER = 1024 * 1024
PREVIEW_CHARS = 256 * 1024


def preview(value: Any, budget: int = PREVIEW_CHARS) -> Any:
    """A copy of a decoded message with about its first `budget` characters, in document order: a
    longer string is cut and the entries past the budget are replaced, each with a marker that says
    how much was cut. Iterative and bounded by the budget, however large or deep the message."""
    left = budget

    def leaf(v: Any) -> Any:
        nonlocal left
        if isinstance(v, str):
            if len(v) > left:
                keep, left = max(left, 0), 0
                return f"{v[:keep]}… [cut: {len(v):,} characters in all]"
            left -= len(v)
        else:
            left -= 8
        return v

    def put(dst: Any, key: Any, v: Any) -> None:
        if isinstance(dst, dict):
            dst[key] = v
        else:
            dst.append(v)

    if not isinstance(value, dict | list):
        return leaf(value)
    out: Any = {} if isinstance(value, dict) else []
    # Frames: the entries still to copy, the copy, how many entries the original has and has given.
    stack: list[list[Any]] = [
        [iter(value.items() if isinstance(value, dict) else enumerate(value)), out, len(value), 0]
    ]
    while stack:
        frame = stack[-1]
        entries, dst, total = frame[0], frame[1], frame[2]
        for k, v in entries:
            if left <= 0:
                put(dst, "…", f"… [cut: {total - frame[3]:,} more entries]")
                break
            frame[3] += 1
            left -= (len(k) if isinstance(k, str) else 0) + 8
            if isinstance(v, dict | list):
                nv: Any = {} if isinstance(v, dict) else []
                put(dst, k, nv)
                stack.append([iter(v.items() if isinstance(v, dict) else enumerate(v)), nv, len(v), 0])
                break  # depth first, in document order: the new frame goes on from here
            put(dst, k, leaf(v))
        else:
            stack.pop()
            continue
        if stack[-1] is frame:
            stack.pop()  # cut
    return out


_TRAFFIC_FIELDS = (
    "ts", "direction", "session", "backend", "msg_kind", "method", "msg_id", "latency_ms", "error", "message", "fault",
    "era",
)  # fmt: skip


@dataclass(slots=True)
class SessionEvent(Event):
    action: Literal["opened", "initialized", "rebuilt", "parked", "closed", "ended"]
    session: str
    backend: str
    transport: str
    era: str
    client: str | None = None
    protocol_version: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class BackendStateEvent(Event):
    backend: str
    state: str
    previous: str
    reason: str | None = None


@dataclass(slots=True)
class BackendLogEvent(Event):
    """A line the backend wrote to stderr, or a notable thing the router did to it."""

    backend: str
    line: str
    stream: Literal["stderr", "stdout", "router"] = "stderr"


@dataclass(slots=True)
class HealthEvent(Event):
    backend: str
    ok: bool
    latency_ms: float | None
    detail: str | None = None


@dataclass(slots=True)
class BackendListEvent(Event):
    action: Literal["added", "removed", "changed"]
    backend: str


@dataclass(slots=True)
class CatalogChangeEvent(Event):
    """A restart or swap changed the backend's catalog (or the user has now looked at the change).

    The change itself is the backend's `last_change` (`GET /backends/{name}`)."""

    backend: str
    count: int
    seen: bool
    summary: str


@dataclass(slots=True)
class RouterEvent(Event):
    """Router-level happenings: listening, warnings, shutdown."""

    level: Literal["info", "warning", "error"]
    text: str


EVENT_TYPES: dict[type[Event], str] = {
    TrafficEvent: "traffic",
    SessionEvent: "session",
    BackendStateEvent: "backend_state",
    BackendLogEvent: "backend_log",
    HealthEvent: "health",
    BackendListEvent: "backend_list",
    CatalogChangeEvent: "catalog_change",
    RouterEvent: "router",
}


EVENT_CLASSES: dict[str, type[Event]] = {name: kind for kind, name in EVENT_TYPES.items()}


def event_from_dict(data: Any) -> Event | None:
    """An event back from its `to_dict()` JSON (as `GET /events` streams it); None for a type this
    version does not know or a body it cannot use. Unknown keys are ignored (a newer router)."""
    if not isinstance(data, dict):
        return None
    kind = EVENT_CLASSES.get(data.get("type"))  # type: ignore[arg-type]
    if kind is None:
        return None
    names = {f.name for f in fields(kind)}
    try:
        return kind(**{k: v for k, v in data.items() if k in names})
    except TypeError:  # a required field missing
        return None


# A subscriber that stops reading holds at most this much (its oldest events go first); a batch
# handed to it at once is at most BATCH_BYTES (at least one event), so serializing it is bounded too.
EVENT_OVERHEAD = 512
SUBSCRIPTION_BYTES = 16 * 1024 * 1024
BATCH_BYTES = 1024 * 1024


class Subscription:
    def __init__(
        self, bus: EventBus, maxsize: int, kinds: frozenset[type[Event]] | None, max_bytes: int = SUBSCRIPTION_BYTES
    ) -> None:
        self._bus = bus
        self.kinds = kinds  # None: every kind
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._queue: deque[tuple[Event, int]] = deque()
        self.bytes = 0
        self._wakeup = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def _put(self, event: Event) -> None:
        cost = event.cost()
        queue = self._queue
        queue.append((event, cost))
        self.bytes += cost
        while (self.bytes > self.max_bytes or len(queue) > self.maxsize) and len(queue) > 1:
            self.bytes -= queue.popleft()[1]
            self.dropped += 1
        self._wakeup.set()

    def drain(self, max_bytes: int | None = None) -> list[Event]:
        """What is queued (up to `max_bytes` of it, at least one event), without waiting (for
        views that poll on an interval)."""
        queue = self._queue
        if max_bytes is None or self.bytes <= max_bytes:
            items = [ev for ev, _ in queue]
            queue.clear()
            self.bytes = 0
        else:
            items = []
            taken = 0
            while queue and (not items or taken + queue[0][1] <= max_bytes):
                ev, cost = queue.popleft()
                items.append(ev)
                taken += cost
            self.bytes -= taken
        if not queue:
            self._wakeup.clear()
        return items

    async def next_batch(self, max_bytes: int | None = None) -> list[Event]:
        while not self._queue:
            if self.closed:
                return []
            self._wakeup.clear()
            await self._wakeup.wait()
        return self.drain(max_bytes)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self.closed:
            batch = await self.next_batch()
            for ev in batch:
                yield ev

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()
        self._bus._subscribers.discard(self)
        self._bus._wanted.clear()


class _Wanted(dict[type[Event], bool]):
    """Whether anyone listens for each kind of event: worked out when first asked, and remembered
    until the subscribers change (they clear it)."""

    def __init__(self, subscribers: set[Subscription]) -> None:
        super().__init__()
        self._subscribers = subscribers

    def __missing__(self, kind: type[Event]) -> bool:
        wanted = self[kind] = any(sub.kinds is None or kind in sub.kinds for sub in self._subscribers)
        return wanted


class EventBus:
    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._wanted = _Wanted(self._subscribers)
        # Whether anyone listens for this kind: the hot path builds no event nobody reads. The
        # table's own lookup, so that asking (twice a call on the hot path) runs no Python code.
        self.wants: Callable[[type[Event]], bool] = self._wanted.__getitem__

    def subscribe(self, maxsize: int = 10_000, kinds: Iterable[type[Event]] | None = None) -> Subscription:
        """A queue of the events published from now on: of the given kinds, or of every kind."""
        sub = Subscription(self, maxsize, None if kinds is None else frozenset(kinds))
        self._subscribers.add(sub)
        self._wanted.clear()
        return sub

    def publish(self, event: Event) -> None:
        kind = type(event)
        for sub in self._subscribers:
            if sub.kinds is None or kind in sub.kinds:
                sub._put(event)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
